//! Keeps `_seq` and `_deleted` out of `SELECT *`, as PostgreSQL does with its
//! system columns, while letting a query name them.
//!
//! Tables expose the two columns only when the request mentions them; then
//! each wildcard over a USER/SHARED table is rewritten to
//! `t.* EXCLUDE (_seq, _deleted)`, so `SELECT *, _seq FROM t` returns the
//! declared columns plus `_seq` exactly once.

use crate::app_context::AppContext;
use crate::context::ExecutionContext;
use kalamdb_commons::{DELETED_COLUMN, SEQ_COLUMN};
use kalamdb_sql::parsers::parse_qualified_name_from;
use kalamdb_sql::sqlparser::ast::{
    ExcludeSelectItem, Ident, ObjectName, ObjectNamePart, Query, SelectItem,
    SelectItemQualifiedWildcardKind, SetExpr, Statement, TableFactor, VisitMut, VisitorMut,
    WildcardAdditionalOptions,
};
use std::ops::ControlFlow;

struct Rewriter<'a> {
    app: &'a AppContext,
    ctx: &'a ExecutionContext,
}

fn exclude_system_columns() -> Option<ExcludeSelectItem> {
    let name = |n: &str| ObjectName(vec![ObjectNamePart::Identifier(Ident::new(n))]);
    Some(ExcludeSelectItem::Multiple(vec![
        name(SEQ_COLUMN),
        name(DELETED_COLUMN),
    ]))
}

fn plain(opts: &WildcardAdditionalOptions) -> bool {
    opts.opt_ilike.is_none()
        && opts.opt_exclude.is_none()
        && opts.opt_except.is_none()
        && opts.opt_replace.is_none()
        && opts.opt_rename.is_none()
}

impl Rewriter<'_> {
    fn is_row_table(&self, name: &ObjectName) -> bool {
        let Ok(q) = parse_qualified_name_from(name) else {
            return false;
        };
        let ns = q
            .namespace
            .unwrap_or_else(|| self.ctx.namespace.to_string());
        self.app.schema_registry.get_table(&ns, &q.name).is_some()
    }

    /// `(qualifier, is_row_table)` for each relation in FROM, or `None` when a
    /// relation has no name to qualify a wildcard with.
    fn relations(
        &self,
        from: &[kalamdb_sql::sqlparser::ast::TableWithJoins],
    ) -> Option<Vec<(ObjectName, bool)>> {
        let mut out = Vec::new();
        for twj in from {
            for factor in
                std::iter::once(&twj.relation).chain(twj.joins.iter().map(|j| &j.relation))
            {
                match factor {
                    TableFactor::Table { name, alias, .. } => {
                        let row = self.is_row_table(name);
                        let qualifier = match alias {
                            Some(a) => ObjectName(vec![ObjectNamePart::Identifier(a.name.clone())]),
                            None => name.clone(),
                        };
                        out.push((qualifier, row));
                    }
                    TableFactor::Derived { alias: Some(a), .. } => {
                        out.push((
                            ObjectName(vec![ObjectNamePart::Identifier(a.name.clone())]),
                            false,
                        ));
                    }
                    _ => return None,
                }
            }
        }
        Some(out)
    }

    fn rewrite_set_expr(&self, body: &mut SetExpr) {
        match body {
            SetExpr::Select(select) => {
                let has_wildcard = select.projection.iter().any(|p| {
                    matches!(
                        p,
                        SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
                    )
                });
                if !has_wildcard {
                    return;
                }
                let Some(relations) = self.relations(&select.from) else {
                    return;
                };
                if !relations.iter().any(|(_, row)| *row) {
                    return;
                }
                let mut projection = Vec::with_capacity(select.projection.len() + relations.len());
                for item in select.projection.drain(..) {
                    match item {
                        SelectItem::Wildcard(opts) if plain(&opts) => {
                            for (qualifier, row) in &relations {
                                let mut o = opts.clone();
                                if *row {
                                    o.opt_exclude = exclude_system_columns();
                                }
                                projection.push(SelectItem::QualifiedWildcard(
                                    SelectItemQualifiedWildcardKind::ObjectName(qualifier.clone()),
                                    o,
                                ));
                            }
                        }
                        SelectItem::QualifiedWildcard(
                            SelectItemQualifiedWildcardKind::ObjectName(name),
                            mut opts,
                        ) if plain(&opts) => {
                            if relations.iter().any(|(q, row)| *row && *q == name) {
                                opts.opt_exclude = exclude_system_columns();
                            }
                            projection.push(SelectItem::QualifiedWildcard(
                                SelectItemQualifiedWildcardKind::ObjectName(name),
                                opts,
                            ));
                        }
                        other => projection.push(other),
                    }
                }
                select.projection = projection;
            }
            SetExpr::SetOperation { left, right, .. } => {
                self.rewrite_set_expr(left);
                self.rewrite_set_expr(right);
            }
            _ => {}
        }
    }
}

impl VisitorMut for Rewriter<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        self.rewrite_set_expr(&mut query.body);
        ControlFlow::Continue(())
    }
}

pub fn hide_system_columns_in_wildcards(
    statement: &mut Statement,
    app: &AppContext,
    ctx: &ExecutionContext,
) {
    let _ = statement.visit(&mut Rewriter { app, ctx });
}
