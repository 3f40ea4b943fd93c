//! Which primary keys a query's filters can match: the rule that turns
//! predicates on the primary key (`=`, `IN`, `<`, `<=`, `>`, `>=`, `BETWEEN`,
//! and their AND / OR combinations) into point reads or one bounded range of
//! the partition instead of a full scan.
//!
//! Bounds live in the key encoding (`kalamdb_store::keys`), which is
//! order-preserving and prefix-free, so comparing bounds is comparing bytes
//! and "just after key k" is k followed by a 0 byte. The result is always a
//! superset of the matching keys, and says when it is exactly them
//! ([`Keys::exact`]): then the scan alone answers the filter and DataFusion
//! does not apply it again (pushed down as `Exact`, so a LIMIT reaches the
//! scan); otherwise the filter still runs on the rows read (`Inexact`).

use crate::rows::coerce::Literal;
use crate::schema::CachedTable;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};
use kalamdb_commons::Value;
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
                let end = p.last().map(|k| after(k));
                (start, end)
            }
        }
    }
}

/// The smallest key greater than `key` and than every key it is a prefix
/// of — in a prefix-free encoding, `key` + 0.
fn after(key: &[u8]) -> Vec<u8> {
    let mut next = Vec::with_capacity(key.len() + 1);
    next.extend_from_slice(key);
    next.push(0);
    next
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

    fn and(self, other: Keys) -> Keys {
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

/// The keys `filter` can match in `table` (a table with a one-column
/// primary key); [`KeySet::All`] when it does not restrict the key.
///
/// Exactness rests on two facts: DataFusion has coerced a literal compared
/// with a column to the column's type before a filter reaches a provider (a
/// comparison across types wraps the column in a cast, which is not the
/// key column here), and the key encoding orders keys as SQL compares them.
pub fn key_set(
    table: &CachedTable,
    filter: &Expr,
    literal: &dyn Fn(&ScalarValue) -> Option<Literal<'_>>,
) -> Keys {
    let Some(pk) = table.primary_key else {
        return Keys::all();
    };
    let name = &table.definition.columns[pk].name;
    let encode = |v: &ScalarValue| -> Option<Vec<u8>> {
        let value: Value = table.pinned_key(name, &literal(v)?)?;
        KeyBuilder::new().value(&value).map(KeyBuilder::build)
    };
    let is_pk = |e: &Expr| matches!(e, Expr::Column(c) if c.name == *name);
    let literal_of = |e: &Expr| match e {
        Expr::Literal(v, _) => Some(v.clone()),
        _ => None,
    };
    match filter {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::And => key_set(table, left, literal).and(key_set(table, right, literal)),
            Operator::Or => key_set(table, left, literal).or(key_set(table, right, literal)),
            Operator::Eq | Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq => {
                // `pk op literal`, or `literal op pk` read the other way
                let (op, value) = if is_pk(left) {
                    (*op, literal_of(right))
                } else if is_pk(right) {
                    (op.swap().unwrap_or(*op), literal_of(left))
                } else {
                    return Keys::all();
                };
                let Some(value) = value else {
                    return Keys::all();
                };
                if value.is_null() {
                    // a comparison with NULL matches nothing
                    return Keys::exact(KeySet::empty());
                }
                let Some(key) = encode(&value) else {
                    return Keys::all();
                };
                Keys::exact(match op {
                    Operator::Eq => KeySet::Points(BTreeSet::from([key])),
                    Operator::Gt => KeySet::Range {
                        start: after(&key),
                        end: None,
                    },
                    Operator::GtEq => KeySet::Range {
                        start: key,
                        end: None,
                    },
                    Operator::Lt => KeySet::Range {
                        start: Vec::new(),
                        end: Some(key),
                    },
                    _ => KeySet::Range {
                        start: Vec::new(),
                        end: Some(after(&key)),
                    },
                })
            }
            _ => Keys::all(),
        },
        Expr::InList(list) if !list.negated && is_pk(&list.expr) => {
            let mut keys = BTreeSet::new();
            for item in &list.list {
                let Some(value) = literal_of(item) else {
                    return Keys::all();
                };
                if value.is_null() {
                    continue;
                }
                match encode(&value) {
                    Some(key) => {
                        keys.insert(key);
                    }
                    None => return Keys::all(),
                }
            }
            Keys::exact(KeySet::Points(keys))
        }
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) if is_pk(expr) => {
            let (Some(low), Some(high)) = (literal_of(low), literal_of(high)) else {
                return Keys::all();
            };
            if low.is_null() || high.is_null() {
                return Keys::exact(KeySet::empty());
            }
            match (encode(&low), encode(&high)) {
                (Some(low), Some(high)) => Keys::exact(KeySet::Range {
                    start: low,
                    end: Some(after(&high)),
                }),
                _ => Keys::all(),
            }
        }
        _ => Keys::all(),
    }
}
