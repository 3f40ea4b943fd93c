//! Integer `+`, `-` and `*` that fail on overflow, as in PostgreSQL
//! (`SELECT 9223372036854775807 * 10` is an error, not `-10`).
//!
//! DataFusion evaluates these operators with wrapping arithmetic. An
//! analyzer rule, run after type coercion (so both operands already have
//! the same integer type) and before the optimizer folds constants, turns
//! each such operator into a call of [`CheckedArithmetic`], which uses
//! Arrow's checked kernels. Output column names are kept as they were.

use datafusion::arrow::compute::kernels::numeric;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::type_coercion::binary::BinaryTypeCoercer;
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Op {
    Add,
    Sub,
    Mul,
}

/// `checked_add(a, b)`, `checked_sub(a, b)`, `checked_mul(a, b)` on two
/// integers of one type.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CheckedArithmetic {
    op: Op,
    signature: Signature,
}

impl CheckedArithmetic {
    fn new(op: Op) -> Self {
        Self {
            op,
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for CheckedArithmetic {
    fn name(&self) -> &str {
        match self.op {
            Op::Add => "checked_add",
            Op::Sub => "checked_sub",
            Op::Mul => "checked_mul",
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args[0].clone())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [lhs, rhs] = &args.args[..] else {
            return datafusion::common::exec_err!("{} takes two arguments", self.name());
        };
        let both_scalar = matches!(
            (lhs, rhs),
            (ColumnarValue::Scalar(_), ColumnarValue::Scalar(_))
        );
        let datum = |v: &ColumnarValue| -> Result<Box<dyn datafusion::arrow::array::Datum>> {
            Ok(match v {
                ColumnarValue::Array(a) => Box::new(Arc::clone(a)),
                ColumnarValue::Scalar(s) => Box::new(s.to_scalar()?),
            })
        };
        let (l, r) = (datum(lhs)?, datum(rhs)?);
        let result = match self.op {
            Op::Add => numeric::add(l.as_ref(), r.as_ref()),
            Op::Sub => numeric::sub(l.as_ref(), r.as_ref()),
            Op::Mul => numeric::mul(l.as_ref(), r.as_ref()),
        }
        .map_err(|e| {
            datafusion::error::DataFusionError::Execution(format!("integer out of range ({e})"))
        })?;
        Ok(if both_scalar {
            ColumnarValue::Scalar(ScalarValue::try_from_array(&result, 0)?)
        } else {
            ColumnarValue::Array(result)
        })
    }
}

/// The analyzer rule that puts [`CheckedArithmetic`] in place of integer
/// `+`, `-` and `*`.
#[derive(Debug)]
pub struct CheckIntegerOverflow {
    add: Arc<ScalarUDF>,
    sub: Arc<ScalarUDF>,
    mul: Arc<ScalarUDF>,
}

impl Default for CheckIntegerOverflow {
    fn default() -> Self {
        let udf = |op| Arc::new(ScalarUDF::from(CheckedArithmetic::new(op)));
        Self {
            add: udf(Op::Add),
            sub: udf(Op::Sub),
            mul: udf(Op::Mul),
        }
    }
}

fn is_integer(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
    )
}

impl CheckIntegerOverflow {
    /// Rewrites one node of a post-order walk. `types` holds the types of
    /// the nodes visited so far whose parent has not been: this node pops
    /// its children's and pushes its own, so each type is computed once
    /// from its children's (asking `get_type` of every operator instead
    /// would walk whole operator chains again at every level).
    fn rewrite(
        &self,
        expr: Expr,
        schema: &DFSchema,
        types: &mut Vec<Option<DataType>>,
    ) -> Result<Transformed<Expr>> {
        let mut children = 0;
        expr.apply_children(|_| {
            children += 1;
            Ok(TreeNodeRecursion::Continue)
        })?;
        let child_types = types.split_off(types.len().saturating_sub(children));
        let Expr::BinaryExpr(BinaryExpr { op, .. }) = &expr else {
            types.push(expr.get_type(schema).ok());
            return Ok(Transformed::no(expr));
        };
        let (lt, rt) = match &child_types[..] {
            [Some(l), Some(r)] => (l, r),
            _ => {
                types.push(None);
                return Ok(Transformed::no(expr));
            }
        };
        types.push(BinaryTypeCoercer::new(lt, op, rt).get_result_type().ok());
        let udf = match op {
            Operator::Plus => &self.add,
            Operator::Minus => &self.sub,
            Operator::Multiply => &self.mul,
            _ => return Ok(Transformed::no(expr)),
        };
        if lt != rt || !is_integer(lt) {
            return Ok(Transformed::no(expr));
        }
        let Expr::BinaryExpr(BinaryExpr { left, right, .. }) = expr else {
            unreachable!("matched above");
        };
        Ok(Transformed::yes(Expr::ScalarFunction(
            ScalarFunction::new_udf(Arc::clone(udf), vec![*left, *right]),
        )))
    }
}

impl AnalyzerRule for CheckIntegerOverflow {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|plan| {
            let mut schema = DFSchema::empty();
            for input in plan.inputs() {
                schema.merge(input.schema());
            }
            let names = NamePreserver::new(&plan);
            let rewritten = plan.map_expressions(|expr| {
                let saved = names.save(&expr);
                let mut types = Vec::new();
                let rewritten = expr.transform_up(|e| self.rewrite(e, &schema, &mut types))?;
                Ok(if rewritten.transformed {
                    Transformed::yes(saved.restore(rewritten.data))
                } else {
                    rewritten
                })
            })?;
            if rewritten.transformed {
                rewritten.map_data(|p| p.recompute_schema())
            } else {
                Ok(rewritten)
            }
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "check_integer_overflow"
    }
}
