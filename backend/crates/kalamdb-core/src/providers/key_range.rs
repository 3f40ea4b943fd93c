//! Which primary keys a query's filters can match: the rule that turns
//! predicates on the primary key (`=`, `IN`, `<`, `<=`, `>`, `>=`, `BETWEEN`,
//! and their AND / OR combinations) into point reads or bounded ranges of
//! the partition instead of a full scan.
//!
//! Each predicate is read per key column ([`KeyPredicate::values_of`]) into
//! the values of that column it can match ([`Keys`]); [`compose`] joins the
//! columns of a key of several columns: the leading columns pinned to
//! points, then at most one range.
//!
//! Bounds live in the key encoding (`kalamdb_store::keys`), which is
//! order-preserving and prefix-free, so comparing bounds is comparing bytes
//! and "just after key k" is the first key past every key that starts
//! with k ([`prefix_end`]): then a bound stays right when more bytes follow
//! the value in a key — the next key column's, or an index entry's primary
//! key after its value (`indexes.rs`). The result is always a
//! superset of the matching keys, and says when it is exactly them
//! ([`KeyPlan::exact`]): then the scan alone answers the filter and DataFusion
//! does not apply it again (pushed down as `Exact`, so a LIMIT reaches the
//! scan); otherwise the filter still runs on the rows read (`Inexact`).
//!
//! The rule reads a [`KeyPredicate`]: the planner's filters and the fast
//! path's SQL (`executor/handlers/key_read.rs`) are both read into one,
//! so a query gets the same keys whichever way it runs.

use crate::rows::coerce::{Literal, coerce};
use crate::schema::CachedTable;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};
use kalamdb_commons::{ColumnDefinition, Value};
use kalamdb_store::backend::prefix_end;
use kalamdb_store::keys::KeyBuilder;
use std::collections::BTreeSet;

/// Encoded primary keys (without the partition prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySet {
    /// No restriction.
    All,
    /// These keys only, in key order.
    Points(BTreeSet<Vec<u8>>),
    /// Keys in `[start, end)`; an empty `start` is unbounded below, `None`
    /// unbounded above.
    Range {
        start: Vec<u8>,
        end: Option<Vec<u8>>,
    },
}

impl KeySet {
    fn empty() -> Self {
        KeySet::Points(BTreeSet::new())
    }

    /// Whether it names no key at all.
    pub fn is_empty(&self) -> bool {
        match self {
            KeySet::All => false,
            KeySet::Points(p) => p.is_empty(),
            KeySet::Range { start, end } => end.as_ref().is_some_and(|e| e <= start),
        }
    }

    fn contains(&self, key: &[u8]) -> bool {
        match self {
            KeySet::All => true,
            KeySet::Points(p) => p.contains(key),
            KeySet::Range { start, end } => {
                key >= start.as_slice() && end.as_ref().is_none_or(|e| key < e.as_slice())
            }
        }
    }

    /// The keys both name (AND).
    pub fn and(self, other: KeySet) -> KeySet {
        match (self, other) {
            (KeySet::All, x) | (x, KeySet::All) => x,
            (KeySet::Points(a), b) => {
                KeySet::Points(a.into_iter().filter(|k| b.contains(k)).collect())
            }
            (a, KeySet::Points(b)) => {
                KeySet::Points(b.into_iter().filter(|k| a.contains(k)).collect())
            }
            (KeySet::Range { start: s1, end: e1 }, KeySet::Range { start: s2, end: e2 }) => {
                KeySet::Range {
                    start: s1.max(s2),
                    end: match (e1, e2) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    },
                }
            }
        }
    }

    /// The keys either names (OR), widened to one range where they are
    /// not both point sets.
    pub fn or(self, other: KeySet) -> KeySet {
        if self.is_empty() {
            return other;
        }
        if other.is_empty() {
            return self;
        }
        match (self, other) {
            (KeySet::All, _) | (_, KeySet::All) => KeySet::All,
            (KeySet::Points(mut a), KeySet::Points(b)) => {
                a.extend(b);
                KeySet::Points(a)
            }
            (a, b) => {
                let (s1, e1) = a.hull();
                let (s2, e2) = b.hull();
                KeySet::Range {
                    start: s1.min(s2),
                    end: match (e1, e2) {
                        (Some(a), Some(b)) => Some(a.max(b)),
                        _ => None,
                    },
                }
            }
        }
    }

    /// The smallest range holding every key (of a non-empty set).
    fn hull(self) -> (Vec<u8>, Option<Vec<u8>>) {
        match self {
            KeySet::All => (Vec::new(), None),
            KeySet::Range { start, end } => (start, end),
            KeySet::Points(p) => {
                let start = p.first().cloned().unwrap_or_default();
                let end = p.last().and_then(|k| after(k));
                (start, end)
            }
        }
    }
}

/// The smallest byte string greater than `key` and than every string that
/// starts with it; `None` when there is none (all bytes 0xFF).
fn after(key: &[u8]) -> Option<Vec<u8>> {
    prefix_end(key)
}

/// The keys a filter can match, and whether a row matches the filter
/// exactly when its key is among them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    pub set: KeySet,
    pub exact: bool,
}

impl Keys {
    fn exact(set: KeySet) -> Self {
        Keys { set, exact: true }
    }

    fn all() -> Self {
        Keys {
            set: KeySet::All,
            exact: false,
        }
    }

    /// Both (AND).
    pub fn and(self, other: Keys) -> Keys {
        Keys {
            exact: self.exact && other.exact,
            set: self.set.and(other.set),
        }
    }

    fn or(self, other: Keys) -> Keys {
        // a union of two point sets, or with an empty side, is exact; any
        // other union is widened to a hull and is not
        let exact = match (&self.set, &other.set) {
            _ if self.set.is_empty() => other.exact,
            _ if other.set.is_empty() => self.exact,
            (KeySet::Points(_), KeySet::Points(_)) => self.exact && other.exact,
            _ => false,
        };
        Keys {
            set: self.set.or(other.set),
            exact,
        }
    }
}

/// A comparison of the primary key with a value, the key on the left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    Eq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

impl Compare {
    /// `value op key` read as `key op' value`.
    pub fn flipped(self) -> Self {
        match self {
            Compare::Lt => Compare::Gt,
            Compare::LtEq => Compare::GtEq,
            Compare::Gt => Compare::Lt,
            Compare::GtEq => Compare::LtEq,
            Compare::Eq => Compare::Eq,
        }
    }
}

/// A filter as the key rule sees it: comparisons of the primary key with
/// literals, combined with AND and OR. Both the planner's filters
/// ([`KeyPredicate::of_expr`]) and the fast path's SQL are read into it, so
/// both reach the same keys by the same rule ([`compose`]).
#[derive(Debug, Clone, PartialEq)]
pub enum KeyPredicate<'a> {
    And(Box<KeyPredicate<'a>>, Box<KeyPredicate<'a>>),
    Or(Box<KeyPredicate<'a>>, Box<KeyPredicate<'a>>),
    /// `pk op value`.
    Compare(Compare, Literal<'a>),
    /// `pk IN (values)`.
    In(Vec<Literal<'a>>),
    /// `pk BETWEEN low AND high`.
    Between(Literal<'a>, Literal<'a>),
    /// Anything else: no restriction of the key that this rule knows.
    Other,
}

impl<'a> KeyPredicate<'a> {
    /// A DataFusion filter read as a predicate on the column `pk` (any
    /// column: an indexed one too).
    pub fn on_column(
        pk: &str,
        filter: &'a Expr,
        literal: &dyn Fn(&'a ScalarValue) -> Option<Literal<'a>>,
    ) -> Self {
        Self::of_expr_on(pk, filter, literal)
    }

    fn of_expr_on(
        pk: &str,
        filter: &'a Expr,
        literal: &dyn Fn(&'a ScalarValue) -> Option<Literal<'a>>,
    ) -> Self {
        let is_pk = |e: &Expr| matches!(e, Expr::Column(c) if c.name == pk);
        let literal_of = |e: &'a Expr| match e {
            Expr::Literal(v, _) => literal(v),
            _ => None,
        };
        let of = |e: &'a Expr| Box::new(Self::of_expr_on(pk, e, literal));
        match filter {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                let compare = match op {
                    Operator::And => return KeyPredicate::And(of(left), of(right)),
                    Operator::Or => return KeyPredicate::Or(of(left), of(right)),
                    Operator::Eq => Compare::Eq,
                    Operator::Lt => Compare::Lt,
                    Operator::LtEq => Compare::LtEq,
                    Operator::Gt => Compare::Gt,
                    Operator::GtEq => Compare::GtEq,
                    _ => return KeyPredicate::Other,
                };
                let (compare, value) = if is_pk(left) {
                    (compare, literal_of(right))
                } else if is_pk(right) {
                    (compare.flipped(), literal_of(left))
                } else {
                    return KeyPredicate::Other;
                };
                value.map_or(KeyPredicate::Other, |v| KeyPredicate::Compare(compare, v))
            }
            Expr::InList(list) if !list.negated && is_pk(&list.expr) => list
                .list
                .iter()
                .map(literal_of)
                .collect::<Option<Vec<_>>>()
                .map_or(KeyPredicate::Other, KeyPredicate::In),
            Expr::Between(Between {
                expr,
                negated: false,
                low,
                high,
            }) if is_pk(expr) => match (literal_of(low), literal_of(high)) {
                (Some(low), Some(high)) => KeyPredicate::Between(low, high),
                _ => KeyPredicate::Other,
            },
            _ => KeyPredicate::Other,
        }
    }

    /// The values of `column` (in the key encoding) this predicate — read
    /// on that column ([`KeyPredicate::on_column`]) — can match:
    /// [`KeySet::All`] when it does not restrict the column. A literal the
    /// column's type does not take as INSERT would take it restricts
    /// nothing (and is not exact): SQL's own comparison decides. The key
    /// encoding orders values as SQL compares them. NULL matches no
    /// comparison, so NULLs are never among them.
    pub fn values_of(&self, column: &ColumnDefinition) -> Keys {
        // Some(None): a NULL, which matches nothing; None: no key value
        let encode = |literal: &Literal<'_>| -> Option<Option<Vec<u8>>> {
            if matches!(literal, Literal::Null) {
                return Some(None);
            }
            let value: Value = coerce(literal, column).ok().filter(|v| !v.is_null())?;
            KeyBuilder::new()
                .value(&value)
                .map(KeyBuilder::build)
                .map(Some)
        };
        match self {
            KeyPredicate::And(a, b) => a.values_of(column).and(b.values_of(column)),
            KeyPredicate::Or(a, b) => a.values_of(column).or(b.values_of(column)),
            KeyPredicate::Other => Keys::all(),
            KeyPredicate::Compare(op, value) => {
                let Some(key) = encode(value) else {
                    return Keys::all();
                };
                let Some(key) = key else {
                    // a comparison with NULL matches nothing
                    return Keys::exact(KeySet::empty());
                };
                Keys::exact(match op {
                    Compare::Eq => KeySet::Points(BTreeSet::from([key])),
                    Compare::Gt => match after(&key) {
                        Some(start) => KeySet::Range { start, end: None },
                        None => KeySet::empty(),
                    },
                    Compare::GtEq => KeySet::Range {
                        start: key,
                        end: None,
                    },
                    Compare::Lt => KeySet::Range {
                        start: Vec::new(),
                        end: Some(key),
                    },
                    Compare::LtEq => KeySet::Range {
                        start: Vec::new(),
                        end: after(&key),
                    },
                })
            }
            KeyPredicate::In(values) => {
                let mut keys = BTreeSet::new();
                for value in values {
                    match encode(value) {
                        Some(Some(key)) => {
                            keys.insert(key);
                        }
                        // a NULL in the list matches nothing
                        Some(None) => {}
                        None => return Keys::all(),
                    }
                }
                Keys::exact(KeySet::Points(keys))
            }
            KeyPredicate::Between(low, high) => match (encode(low), encode(high)) {
                (Some(Some(low)), Some(Some(high))) => Keys::exact(KeySet::Range {
                    start: low,
                    end: after(&high),
                }),
                (Some(None), _) | (_, Some(None)) => Keys::exact(KeySet::empty()),
                _ => Keys::all(),
            },
        }
    }
}

/// The keys of a table a read covers, from the predicates on its primary
/// key's columns (encoded, without the partition prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRead {
    /// Every key.
    All,
    /// These whole keys, ascending and distinct (a vector: a live query
    /// holds its keys as long as it lives, and a one-element B-tree set
    /// costs a 280-byte node).
    Points(Vec<Vec<u8>>),
    /// The keys in these `[start, end)` ranges, ascending and disjoint; an
    /// empty `start` is unbounded below, `None` unbounded above.
    Ranges(Vec<(Vec<u8>, Option<Vec<u8>>)>),
}

/// How a table's key is read for a conjunction of predicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPlan {
    pub read: KeyRead,
    /// Per predicate: whether the read alone answers it (every row read
    /// matches it, and every row it matches is read).
    pub exact: Vec<bool>,
    /// How many leading key columns hold one value in every row read (an
    /// ORDER BY on them is satisfied by any order).
    pub pinned: usize,
}

/// The most key prefixes (combinations of the values the predicates pin
/// the leading key columns to) a read expands into; past it, the read
/// stops at the column before.
pub const MAX_PREFIXES: usize = 1000;

/// The read of a table's key for a conjunction of predicates, from what
/// each predicate allows of each key column: `columns[j][c]` is predicate
/// `c` read on the key's `j`-th column ([`KeyPredicate::values_of`]).
///
/// A key of several columns is encoded column by column, each encoding
/// prefix-free, so the keys whose leading columns hold given values are
/// one range: the read takes the leading columns the predicates pin to
/// points (every combination of them — for a one-column key these are the
/// points themselves), then at most one more column they bound to a range
/// (a range under each combination), and leaves the rest to DataFusion.
/// `WHERE chat = 7 AND id > 100` on a key `(chat, id)` is one range of
/// the chat's rows; `WHERE id > 100` alone restricts nothing.
pub fn compose(columns: &[Vec<Keys>], predicates: usize) -> KeyPlan {
    let mut prefixes: Vec<Vec<u8>> = vec![Vec::new()];
    let mut used = 0;
    let mut pinned = 0;
    let mut tail: Option<(Vec<u8>, Option<Vec<u8>>)> = None;
    for (j, keys) in columns.iter().enumerate() {
        let set = keys
            .iter()
            .fold(KeySet::All, |set, k| set.and(k.set.clone()));
        match set {
            KeySet::All => break,
            KeySet::Points(points) => {
                if prefixes.len().saturating_mul(points.len()) > MAX_PREFIXES {
                    break;
                }
                // prefix-free encodings: concatenating keeps key order
                prefixes = prefixes
                    .iter()
                    .flat_map(|p| {
                        points.iter().map(move |v| {
                            let mut key = p.clone();
                            key.extend_from_slice(v);
                            key
                        })
                    })
                    .collect();
                used = j + 1;
                if prefixes.len() == 1 {
                    pinned = used;
                }
            }
            KeySet::Range { start, end } => {
                tail = Some((start, end));
                used = j + 1;
                break;
            }
        }
    }
    let exact = (0..predicates)
        .map(|c| {
            columns.iter().enumerate().any(|(j, keys)| {
                let k = &keys[c];
                k.exact && (j < used || k.set == KeySet::All)
            })
        })
        .collect();
    let read = if used == 0 {
        KeyRead::All
    } else if tail.is_none() && used == columns.len() {
        // products of ascending distinct prefix-free parts: ascending, distinct
        KeyRead::Points(prefixes)
    } else {
        let joined = |p: &[u8], v: &[u8]| [p, v].concat();
        let ranges: Vec<(Vec<u8>, Option<Vec<u8>>)> = prefixes
            .iter()
            .map(|p| match &tail {
                Some((start, end)) => (
                    joined(p, start),
                    match end {
                        Some(e) => Some(joined(p, e)),
                        None => after(p),
                    },
                ),
                None => (p.clone(), after(p)),
            })
            .filter(|(start, end)| end.as_ref().is_none_or(|e| e > start))
            .collect();
        if ranges.is_empty() {
            KeyRead::Points(Vec::new())
        } else {
            KeyRead::Ranges(ranges)
        }
    };
    KeyPlan {
        read,
        exact,
        pinned,
    }
}

/// The read of `table`'s key for `filters` (DataFusion filters on a scan of
/// it, ANDed), their literals read by `literal`.
pub fn table_keys<'a>(
    table: &CachedTable,
    filters: &[&'a Expr],
    literal: &dyn Fn(&'a ScalarValue) -> Option<Literal<'a>>,
) -> KeyPlan {
    let columns: Vec<Vec<Keys>> = table
        .key
        .iter()
        .map(|&i| {
            let column = &table.definition.columns[i];
            filters
                .iter()
                .map(|f| KeyPredicate::on_column(&column.name, f, literal).values_of(column))
                .collect()
        })
        .collect();
    compose(&columns, filters.len())
}
