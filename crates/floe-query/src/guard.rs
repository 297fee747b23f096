//! Guards on the SQL functions whose output a query can make as large as it likes.
//!
//! DataFusion's memory pool counts what operators hold (sorts, joins, aggregations), not
//! what a scalar function returns. A function whose output size comes from an argument
//! (`repeat('x', 10000000000)`, `range(10000000000000)`, `array_repeat(0, 1e13)`,
//! `lpad('', 2e9)`) or that joins its inputs (`concat(s, s, s, ...)`) allocates the whole
//! result at once, and a failed allocation aborts the process. Constant folding runs such
//! calls while the query is still being planned, before any pool is involved.
//!
//! Each such function is replaced, in every session, by a [`Guarded`] wrapper that
//! estimates the output from its arguments *before* calling the function, and checks
//! the output it got after. A call may produce at most
//! `max(max_function_output_bytes, its largest input column)`: a limit of its own, or
//! the size of data that already exists (a column of large records). Every growing
//! step is capped that way, so no chain of them, however deep, compounds past the
//! limit. The wrappers go in by name (so SQL calls and constant folding of table
//! function arguments use them) and by an analyzer rule ([`GuardFunctions`]) for calls
//! DataFusion's planners build without the registry (`[1, 2]` is `make_array`).
//!
//! `array_agg` and `string_agg` are guarded as aggregates ([`GuardedAggregate`]): as
//! window functions over a growing frame each row's answer repeats every earlier row
//! (an output quadratic in the input), so the values they hand out may total at most
//! 64 times what they were fed, or the limit.
//!
//! Functions not listed here return at most about what they are given (`upper`,
//! `json_get`, `substr`, ...) and run unwrapped.

use std::any::Any;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, FieldRef, Int64Type, IntervalMonthDayNanoType};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DataFusionError, ExprSchema, Result, ScalarValue};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::function::{
    AccumulatorArgs, AggregateFunctionSimplification, StateFieldsArgs,
};
use datafusion::logical_expr::interval_arithmetic::Interval;
use datafusion::logical_expr::preimage::PreimageResult;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, Documentation, Expr,
    ExpressionPlacement, GroupsAccumulator, LogicalPlan, ReturnFieldArgs, ReversedUDAF,
    ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, SetMonotonicity, Signature, StatisticsArgs,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::prelude::SessionContext;

/// How a guarded function's output grows with its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Growth {
    /// `repeat(s, n)`: `len(s) * n`.
    Repeat,
    /// `lpad(s, n[, fill])`, `rpad`: `n` characters.
    Pad,
    /// `replace(s, from, to)`: each `from` (each character when empty) becomes `to`.
    Replace,
    /// `regexp_replace(s, pattern, replacement[, flags])`: every position may match,
    /// and group references repeat the match.
    RegexpReplace,
    /// `range` / `generate_series` as scalars: a list of `(stop - start) / step` values.
    Range,
    /// `array_repeat(element, count)`.
    ArrayRepeat,
    /// `array_resize(array, size[, value])`.
    ArrayResize,
    /// `array_to_string(array, delimiter[, null_string])`: a delimiter per element.
    ArrayToString,
    /// `string_to_array(s, delimiter[, null_string])`: up to an element per byte.
    StringToArray,
    /// `array_replace(array, from, to)` and `_n`, `_all`: `to` per element.
    ArrayReplace,
    /// The output joins the inputs (`concat`, `make_array`, `array_append`, ...).
    Joins,
    /// `concat_ws(separator, ...)`: the inputs and a separator between each two.
    ConcatWs,
    /// `encode(s, 'hex')`: twice the input.
    Encode,
    /// `arrow_cast(x, 'FixedSizeBinary(n)')`: a fixed width per row, nulls included.
    Cast,
}

/// The guarded scalar functions, by DataFusion name (aliases follow their function).
fn growth_of(name: &str) -> Option<Growth> {
    Some(match name {
        "repeat" => Growth::Repeat,
        "lpad" | "rpad" => Growth::Pad,
        "replace" => Growth::Replace,
        "regexp_replace" => Growth::RegexpReplace,
        "range" | "generate_series" => Growth::Range,
        "array_repeat" => Growth::ArrayRepeat,
        "array_resize" => Growth::ArrayResize,
        "array_to_string" => Growth::ArrayToString,
        "string_to_array" => Growth::StringToArray,
        "array_replace" | "array_replace_n" | "array_replace_all" => Growth::ArrayReplace,
        "concat_ws" => Growth::ConcatWs,
        "concat" | "array_concat" | "array_append" | "array_prepend" | "make_array"
        | "array_union" | "make_map" | "map" | "named_struct" | "struct" | "array_insert" => {
            Growth::Joins
        }
        "encode" => Growth::Encode,
        "arrow_cast" => Growth::Cast,
        _ => return None,
    })
}

/// Names of the guarded aggregates.
const GUARDED_AGGREGATES: &[&str] = &["array_agg", "string_agg"];

/// A window aggregate may hand out this many times the bytes it was fed (a frame of
/// this many rows repeats each value that often) before the limit applies.
const WINDOW_REPEAT: usize = 64;

/// Replaces the growing functions of `ctx` with guarded ones and adds the analyzer rule
/// that guards calls built without the registry. `limit`: `[query]
/// max_function_output_bytes`.
pub fn install(ctx: &mut SessionContext, limit: usize) {
    let state = ctx.state();
    let mut seen = std::collections::HashSet::new();
    for f in state.scalar_functions().values() {
        if growth_of(f.name()).is_some() && seen.insert(f.name().to_owned()) {
            ctx.register_udf(guard_scalar(f.clone(), limit));
        }
    }
    for name in GUARDED_AGGREGATES {
        if let Some(f) = state.aggregate_functions().get(*name) {
            ctx.register_udaf(AggregateUDF::new_from_impl(GuardedAggregate {
                inner: f.as_ref().clone(),
                limit,
            }));
        }
    }
    ctx.add_analyzer_rule(Arc::new(GuardFunctions { limit }));
}

/// `f` guarded with `limit`, if its output can grow past its inputs (a guarded `f` gets
/// the new limit); `f` itself otherwise.
fn guard_scalar(f: Arc<ScalarUDF>, limit: usize) -> ScalarUDF {
    let inner = match f.inner().as_any().downcast_ref::<Guarded>() {
        Some(g) if g.limit == limit => return f.as_ref().clone(),
        Some(g) => g.inner.clone(),
        None => f.as_ref().clone(),
    };
    match growth_of(inner.name()) {
        Some(growth) => ScalarUDF::new_from_impl(Guarded {
            inner,
            growth,
            limit,
        }),
        None => inner,
    }
}

/// Guards the growing functions of an expression tree with `limit` each.
fn guard_expr(e: Expr, limit: usize) -> Result<Transformed<Expr>> {
    e.transform_up(|e| match e {
        Expr::ScalarFunction(f) if growth_of(f.func.name()).is_some() => {
            let func = Arc::new(guard_scalar(f.func, limit));
            Ok(Transformed::yes(Expr::ScalarFunction(ScalarFunction {
                func,
                args: f.args,
            })))
        }
        other => Ok(Transformed::no(other)),
    })
}

/// The smallest share of the limit one call gets however many a statement makes (a
/// statement of `max_sql_bytes` holds at most about a thousand calls).
const MIN_SHARE: usize = 256 << 10;

/// The analyzer rule that guards growing functions DataFusion's planners call without
/// the registry (array literals are `make_array`, list `||` is `array_concat`, `MAP {}`),
/// and splits the limit among the statement's growing calls: forty `repeat`s in one
/// projection share `max_function_output_bytes` rather than take it forty times.
#[derive(Debug)]
pub struct GuardFunctions {
    limit: usize,
}

impl AnalyzerRule for GuardFunctions {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        let mut calls = 0usize;
        plan.apply_with_subqueries(|p| {
            p.apply_expressions(|e| {
                e.apply(|e| {
                    if let Expr::ScalarFunction(f) = e {
                        if growth_of(f.func.name()).is_some() {
                            calls += 1;
                        }
                    }
                    Ok(TreeNodeRecursion::Continue)
                })
            })
        })?;
        let share = (self.limit / calls.max(1)).max(MIN_SHARE.min(self.limit));
        plan.transform_up_with_subqueries(|p| p.map_expressions(|e| guard_expr(e, share)))
            .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "floe_guard_functions"
    }
}

/// A growing scalar function with its output checked before and after the call.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Guarded {
    inner: ScalarUDF,
    growth: Growth,
    limit: usize,
}

/// Bytes an array's values take (only its slice, not buffers it shares).
fn array_bytes(a: &dyn Array) -> usize {
    a.to_data()
        .get_slice_memory_size()
        .unwrap_or_else(|_| a.get_array_memory_size())
}

fn value_bytes(v: &ColumnarValue) -> usize {
    match v {
        ColumnarValue::Array(a) => array_bytes(a.as_ref()),
        ColumnarValue::Scalar(s) => s.size(),
    }
}

impl Guarded {
    fn refuse(&self, what: &str, bytes: u128, rows: usize) -> DataFusionError {
        DataFusionError::ResourcesExhausted(format!(
            "{}: {what} for {rows} rows would take about {bytes} bytes, over the limit of \
             {} bytes for one function call ([query] max_function_output_bytes)",
            self.inner.name(),
            self.limit
        ))
    }

    /// What one call may produce: the limit, or its largest input column, which exists
    /// already.
    fn allowed(&self, args: &[ColumnarValue]) -> u128 {
        let largest = args
            .iter()
            .filter_map(|a| match a {
                ColumnarValue::Array(a) => Some(array_bytes(a.as_ref())),
                ColumnarValue::Scalar(_) => None,
            })
            .max()
            .unwrap_or(0);
        self.limit.max(largest) as u128
    }
}

impl ScalarUDFImpl for Guarded {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        self.inner.inner().schema_name(args)
    }

    fn display_name(&self, args: &[Expr]) -> Result<String> {
        #[allow(deprecated)]
        self.inner.inner().display_name(args)
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.inner().return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let field = self.inner.inner().return_field_from_args(args)?;
        if self.growth == Growth::Cast {
            // A fixed-size type is allocated whole for every row, nulls included, and the
            // cast that replaces this call runs without the guard: refuse wide ones while
            // planning, at what one batch of 8192 rows could hold within the limit.
            let width = fixed_width(field.data_type());
            let most = (self.limit / 8192).max(1) as u128;
            if width > most {
                return Err(DataFusionError::ResourcesExhausted(format!(
                    "arrow_cast to {}: {width} bytes per row is over the {most} bytes a row may \
                     take ([query] max_function_output_bytes / 8192)",
                    field.data_type()
                )));
            }
        }
        Ok(field)
    }

    fn is_nullable(&self, args: &[Expr], schema: &dyn ExprSchema) -> bool {
        #[allow(deprecated)]
        self.inner.inner().is_nullable(args, schema)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let allowed = self.allowed(&args.args);
        if let Some(estimate) = estimate(self.growth, &args.args, rows) {
            if estimate > allowed {
                return Err(self.refuse("its output", estimate, rows));
            }
        }
        let out = self.inner.invoke_with_args(args)?;
        let got = value_bytes(&out) as u128;
        if got > allowed {
            return Err(self.refuse("its output", got, rows));
        }
        Ok(out)
    }

    fn with_updated_config(&self, _config: &ConfigOptions) -> Option<ScalarUDF> {
        // SET is refused (statements are off); a re-registration must not drop the guard.
        None
    }

    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        // `concat` and `concat_ws` join constant arguments while simplifying, outside
        // `invoke_with_args`: leave such a call as it is when the constants together are
        // over the limit (it then fails when invoked).
        if matches!(self.growth, Growth::Joins | Growth::ConcatWs) {
            let literals: Vec<u128> = args
                .iter()
                .filter_map(|a| match a {
                    Expr::Literal(v, _) => Some(scalar_bytes(v) as u128),
                    _ => None,
                })
                .collect();
            let mut total: u128 = literals.iter().sum();
            if self.growth == Growth::ConcatWs {
                total += literals.first().copied().unwrap_or(0) * args.len() as u128;
            }
            if total > self.limit as u128 {
                return Ok(ExprSimplifyResult::Original(args));
            }
        }
        // A simplification may rebuild the call from DataFusion's own instance (concat
        // does): guard what comes back.
        Ok(match self.inner.inner().simplify(args, info)? {
            ExprSimplifyResult::Simplified(e) => {
                ExprSimplifyResult::Simplified(guard_expr(e, self.limit)?.data)
            }
            original => original,
        })
    }

    fn preimage(
        &self,
        args: &[Expr],
        lit_expr: &Expr,
        info: &SimplifyContext,
    ) -> Result<PreimageResult> {
        self.inner.inner().preimage(args, lit_expr, info)
    }

    fn short_circuits(&self) -> bool {
        self.inner.inner().short_circuits()
    }

    fn conditional_arguments<'a>(
        &self,
        args: &'a [Expr],
    ) -> Option<(Vec<&'a Expr>, Vec<&'a Expr>)> {
        self.inner.inner().conditional_arguments(args)
    }

    fn evaluate_bounds(&self, input: &[&Interval]) -> Result<Interval> {
        self.inner.inner().evaluate_bounds(input)
    }

    fn propagate_constraints(
        &self,
        interval: &Interval,
        inputs: &[&Interval],
    ) -> Result<Option<Vec<Interval>>> {
        self.inner.inner().propagate_constraints(interval, inputs)
    }

    fn output_ordering(&self, inputs: &[ExprProperties]) -> Result<SortProperties> {
        self.inner.inner().output_ordering(inputs)
    }

    fn preserves_lex_ordering(&self, inputs: &[ExprProperties]) -> Result<bool> {
        self.inner.inner().preserves_lex_ordering(inputs)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.inner().coerce_types(arg_types)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.inner().documentation()
    }

    fn placement(&self, args: &[ExpressionPlacement]) -> ExpressionPlacement {
        self.inner.inner().placement(args)
    }
}

/// Bytes one row of `dt` takes however small its value (fixed-size types).
fn fixed_width(dt: &DataType) -> u128 {
    match dt {
        DataType::FixedSizeBinary(n) => (*n).max(0) as u128,
        DataType::FixedSizeList(f, n) => {
            ((*n).max(0) as u128).saturating_mul(fixed_width(f.data_type()).max(1))
        }
        DataType::Struct(fields) => fields.iter().map(|f| fixed_width(f.data_type())).sum(),
        _ => dt.primitive_width().unwrap_or(0) as u128,
    }
}

/// Integers per row of an argument: one for every row, or a column of them.
enum Ints {
    Const(Option<i64>),
    Column(datafusion::arrow::array::Int64Array),
}

impl Ints {
    fn of(v: &ColumnarValue) -> Option<Self> {
        Some(match v {
            ColumnarValue::Scalar(s) => Ints::Const(match s.cast_to(&DataType::Int64).ok()? {
                ScalarValue::Int64(v) => v,
                _ => return None,
            }),
            ColumnarValue::Array(a) => {
                let a = datafusion::arrow::compute::cast(a, &DataType::Int64).ok()?;
                Ints::Column(a.as_primitive::<Int64Type>().clone())
            }
        })
    }

    fn get(&self, row: usize) -> i64 {
        match self {
            Ints::Const(v) => v.unwrap_or(0),
            Ints::Column(a) => {
                if a.is_null(row) {
                    0
                } else {
                    a.value(row)
                }
            }
        }
    }
}

/// Byte lengths per row of a string or binary argument.
enum Lens {
    Const(usize),
    Column(Vec<usize>),
}

impl Lens {
    fn of(v: &ColumnarValue) -> Option<Self> {
        Some(match v {
            ColumnarValue::Scalar(s) => Lens::Const(match s {
                ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v) => {
                    v.as_ref().map_or(0, String::len)
                }
                ScalarValue::Binary(v)
                | ScalarValue::LargeBinary(v)
                | ScalarValue::BinaryView(v)
                | ScalarValue::FixedSizeBinary(_, v) => v.as_ref().map_or(0, Vec::len),
                ScalarValue::Null => 0,
                _ => return None,
            }),
            ColumnarValue::Array(a) => {
                let lens = datafusion::arrow::compute::kernels::length::length(a).ok()?;
                let lens = datafusion::arrow::compute::cast(&lens, &DataType::Int64).ok()?;
                let lens = lens.as_primitive::<Int64Type>();
                Lens::Column(
                    (0..lens.len())
                        .map(|i| {
                            if lens.is_null(i) {
                                0
                            } else {
                                lens.value(i).max(0) as usize
                            }
                        })
                        .collect(),
                )
            }
        })
    }

    fn get(&self, row: usize) -> usize {
        match self {
            Lens::Const(n) => *n,
            Lens::Column(v) => v.get(row).copied().unwrap_or(0),
        }
    }
}

/// Rows to iterate: the batch's, or one when every argument is a constant (the call
/// then yields one value).
fn rows_of(args: &[ColumnarValue], rows: usize) -> usize {
    if args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) {
        1
    } else {
        rows
    }
}

/// An upper bound on the bytes `growth`'s function returns for `args`, or None when the
/// arguments are of a kind the estimate does not read (the check after the call still
/// holds).
fn estimate(growth: Growth, args: &[ColumnarValue], rows: usize) -> Option<u128> {
    let n = rows_of(args, rows);
    let sum =
        |f: &dyn Fn(usize) -> u128| -> u128 { (0..n).map(f).fold(0u128, u128::saturating_add) };
    let arg = |i: usize| args.get(i);
    Some(match growth {
        Growth::Repeat => {
            let (s, k) = (Lens::of(arg(0)?)?, Ints::of(arg(1)?)?);
            sum(&|r| s.get(r) as u128 * k.get(r).max(0) as u128)
        }
        Growth::Pad => {
            let k = Ints::of(arg(1)?)?;
            sum(&|r| 4 * k.get(r).max(0) as u128)
        }
        Growth::Replace => {
            let (s, from, to) = (Lens::of(arg(0)?)?, Lens::of(arg(1)?)?, Lens::of(arg(2)?)?);
            sum(&|r| {
                let len = s.get(r) as u128;
                len + (len / from.get(r).max(1) as u128 + 1) * to.get(r) as u128
            })
        }
        Growth::RegexpReplace => {
            let s = Lens::of(arg(0)?)?;
            let rep = arg(2)?;
            let (rep_len, refs) = match rep {
                ColumnarValue::Scalar(sv) => {
                    let text = sv.try_as_str().flatten().unwrap_or_default();
                    (Lens::Const(text.len()), references(text))
                }
                ColumnarValue::Array(_) => (Lens::of(rep)?, 1),
            };
            sum(&|r| {
                let len = s.get(r) as u128;
                len + (len + 1) * (rep_len.get(r) as u128 + refs * len)
            })
        }
        Growth::Range => range_elements(args, n)?.saturating_mul(8),
        Growth::ArrayRepeat => {
            let count = Ints::of(arg(1)?)?;
            let element = per_row_bytes(arg(0)?);
            sum(&|r| count.get(r).max(0) as u128 * (element.get(r) as u128 + 4))
        }
        Growth::ArrayResize => {
            let size = Ints::of(arg(1)?)?;
            let fill = match arg(2) {
                Some(v) => per_row_bytes(v),
                None => Lens::Const(0),
            };
            sum(&|r| size.get(r).max(0) as u128 * (16 + fill.get(r) as u128))
        }
        Growth::ArrayToString => {
            let (list, delim) = (arg(0)?, Lens::of(arg(1)?)?);
            let null = match arg(2) {
                Some(v) => Lens::of(v)?,
                None => Lens::Const(0),
            };
            let (elements, values) = list_size(list, n)?;
            let per = (0..n)
                .map(|r| delim.get(r) + null.get(r))
                .max()
                .unwrap_or(0) as u128;
            values + elements * per
        }
        Growth::ArrayReplace => {
            let to = per_row_bytes(arg(2)?);
            let widest = (0..n).map(|r| to.get(r)).max().unwrap_or(0) as u128;
            let (elements, values) = list_size(arg(0)?, n)?;
            values + elements * (widest + 16)
        }
        Growth::StringToArray => {
            let s = Lens::of(arg(0)?)?;
            sum(&|r| 16 * (s.get(r) as u128 + 1))
        }
        Growth::Joins | Growth::ConcatWs => {
            let bytes = |a: &ColumnarValue| -> u128 {
                match a {
                    ColumnarValue::Array(a) => array_bytes(a.as_ref()) as u128,
                    // A constant joined to every row: its value's bytes, once per row.
                    ColumnarValue::Scalar(s) => scalar_bytes(s) as u128 * n as u128,
                }
            };
            let all = args.iter().map(bytes).fold(0u128, u128::saturating_add);
            if growth == Growth::ConcatWs {
                // The separator goes between every two arguments, empty ones included.
                let separator = args.first().map_or(0, bytes);
                all.saturating_add(separator.saturating_mul(args.len() as u128))
            } else {
                all
            }
        }
        Growth::Encode => {
            2 * args.first().map_or(0, |a| match a {
                ColumnarValue::Array(a) => array_bytes(a.as_ref()) as u128,
                ColumnarValue::Scalar(s) => s.size() as u128,
            })
        }
        Growth::Cast => return None,
    })
}

/// The bytes a constant's value takes: its length for strings and binary, its in-memory
/// size otherwise.
fn scalar_bytes(s: &ScalarValue) -> usize {
    match Lens::of(&ColumnarValue::Scalar(s.clone())) {
        Some(Lens::Const(n)) => n,
        _ => s.size(),
    }
}

/// Bytes of each row's value of an argument: string and binary lengths, else each row's
/// slice of the array (a constant's size for every row).
fn per_row_bytes(v: &ColumnarValue) -> Lens {
    if let Some(lens) = Lens::of(v) {
        return lens;
    }
    match v {
        ColumnarValue::Scalar(s) => Lens::Const(s.size()),
        ColumnarValue::Array(a) => Lens::Column(
            (0..a.len())
                .map(|r| array_bytes(a.slice(r, 1).as_ref()))
                .collect(),
        ),
    }
}

/// (elements, bytes) of a list argument over `rows` rows: a constant list counts once per
/// row, as the function joins it for every row.
fn list_size(list: &ColumnarValue, rows: usize) -> Option<(u128, u128)> {
    Some(match list {
        ColumnarValue::Array(a) => (
            flat_len(a.as_ref()) as u128,
            array_bytes(a.as_ref()) as u128,
        ),
        ColumnarValue::Scalar(s) => {
            let a = s.to_array().ok()?;
            (
                flat_len(a.as_ref()) as u128 * rows as u128,
                s.size() as u128 * rows as u128,
            )
        }
    })
}

/// Group references in a regexp replacement (`$1`, `${name}`, `\1`): each repeats a match.
fn references(text: &str) -> u128 {
    text.matches(['$', '\\']).count() as u128
}

/// Elements of a list array's values, however nested.
fn flat_len(a: &dyn Array) -> usize {
    match a.data_type() {
        DataType::List(_) => flat_len(a.as_list::<i32>().values().as_ref()),
        DataType::LargeList(_) => flat_len(a.as_list::<i64>().values().as_ref()),
        DataType::FixedSizeList(_, _) => flat_len(a.as_fixed_size_list().values().as_ref()),
        _ => a.len(),
    }
}

/// Values `range(start, stop, step)` (or `generate_series`) returns over `rows` rows:
/// integers, or dates and timestamps stepped by an interval.
fn range_elements(args: &[ColumnarValue], rows: usize) -> Option<u128> {
    let (start, stop, step) = match args {
        [stop] => (None, stop, None),
        [start, stop] => (Some(start), stop, None),
        [start, stop, step] => (Some(start), stop, Some(step)),
        _ => return None,
    };
    // Dates count in days, timestamps in their unit; an interval step in the same unit.
    let unit: Option<i128> = match stop.data_type() {
        DataType::Date32 => Some(86_400_000_000_000),
        DataType::Date64 => Some(1_000_000),
        DataType::Timestamp(u, _) => Some(match u {
            datafusion::arrow::datatypes::TimeUnit::Second => 1_000_000_000,
            datafusion::arrow::datatypes::TimeUnit::Millisecond => 1_000_000,
            datafusion::arrow::datatypes::TimeUnit::Microsecond => 1_000,
            datafusion::arrow::datatypes::TimeUnit::Nanosecond => 1,
        }),
        _ => None,
    };
    let as_ints = |v: &ColumnarValue| -> Option<Ints> {
        match (unit, v) {
            (Some(_), ColumnarValue::Scalar(s)) => {
                let s = s
                    .cast_to(
                        &s.data_type()
                            .primitive_width()
                            .map_or(DataType::Int64, |w| {
                                if w == 4 {
                                    DataType::Int32
                                } else {
                                    DataType::Int64
                                }
                            }),
                    )
                    .ok()?;
                Ints::of(&ColumnarValue::Scalar(s))
            }
            (Some(_), ColumnarValue::Array(a)) => {
                let ints = match a.data_type().primitive_width() {
                    Some(4) => datafusion::arrow::compute::cast(
                        &datafusion::arrow::compute::cast(a, &DataType::Int32).ok()?,
                        &DataType::Int64,
                    )
                    .ok()?,
                    _ => datafusion::arrow::compute::cast(a, &DataType::Int64).ok()?,
                };
                Some(Ints::Column(ints.as_primitive::<Int64Type>().clone()))
            }
            (None, v) => Ints::of(v),
        }
    };
    let stop = as_ints(stop)?;
    let start = match start {
        Some(s) => as_ints(s)?,
        None => Ints::Const(Some(0)),
    };
    // The span is counted in nanoseconds for dates and timestamps (in their unit times
    // `unit`) and the step too (an interval, with the smallest month, 28 days, so the
    // count is an upper bound); integers count as they are.
    let scale = unit.map_or(1u128, |u| u.unsigned_abs());
    let step: Box<dyn Fn(usize) -> u128> = match (unit, step) {
        (None, None) => Box::new(|_| 1),
        // DataFusion refuses a date or timestamp range without an interval.
        (Some(_), None) => return None,
        (None, Some(s)) => {
            let s = Ints::of(s)?;
            Box::new(move |r| s.get(r).unsigned_abs().max(1) as u128)
        }
        (Some(_), Some(s)) => {
            let nanos = |m: i32, d: i32, ns: i64| -> i128 {
                i128::from(m).abs() * 28 * 86_400_000_000_000
                    + i128::from(d).abs() * 86_400_000_000_000
                    + i128::from(ns).abs()
            };
            match s {
                ColumnarValue::Scalar(sv) if matches!(sv.data_type(), DataType::Interval(_)) => {
                    let mdn = DataType::Interval(
                        datafusion::arrow::datatypes::IntervalUnit::MonthDayNano,
                    );
                    let ScalarValue::IntervalMonthDayNano(Some(v)) = sv.cast_to(&mdn).ok()? else {
                        return None;
                    };
                    let per = nanos(v.months, v.days, v.nanoseconds).max(1) as u128;
                    Box::new(move |_| per)
                }
                ColumnarValue::Array(a) if matches!(a.data_type(), DataType::Interval(_)) => {
                    let a = datafusion::arrow::compute::cast(
                        a,
                        &DataType::Interval(
                            datafusion::arrow::datatypes::IntervalUnit::MonthDayNano,
                        ),
                    )
                    .ok()?;
                    let a = a.as_primitive::<IntervalMonthDayNanoType>().clone();
                    Box::new(move |r| {
                        if a.is_null(r) {
                            return 1;
                        }
                        let v = a.value(r);
                        nanos(v.months, v.days, v.nanoseconds).max(1) as u128
                    })
                }
                _ => return None,
            }
        }
    };
    Some(
        (0..rows)
            .map(|r| {
                let span = (i128::from(stop.get(r)) - i128::from(start.get(r))).unsigned_abs();
                span.saturating_mul(scale) / step(r) + 1
            })
            .fold(0u128, u128::saturating_add),
    )
}

/// An aggregate whose answers repeat its input (`array_agg`, `string_agg`), guarded
/// against window frames that hand out more than [`WINDOW_REPEAT`] times what it was fed.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct GuardedAggregate {
    inner: AggregateUDF,
    limit: usize,
}

impl GuardedAggregate {
    fn wrap(&self, inner: Box<dyn Accumulator>) -> Box<dyn Accumulator> {
        Box::new(GuardedAccumulator {
            inner,
            name: self.inner.name().to_owned(),
            limit: self.limit,
            fed: 0,
            handed_out: 0,
        })
    }
}

impl AggregateUDFImpl for GuardedAggregate {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn schema_name(
        &self,
        params: &datafusion::logical_expr::expr::AggregateFunctionParams,
    ) -> Result<String> {
        self.inner.inner().schema_name(params)
    }

    fn human_display(
        &self,
        params: &datafusion::logical_expr::expr::AggregateFunctionParams,
    ) -> Result<String> {
        self.inner.inner().human_display(params)
    }

    fn window_function_schema_name(
        &self,
        params: &datafusion::logical_expr::expr::WindowFunctionParams,
    ) -> Result<String> {
        self.inner.inner().window_function_schema_name(params)
    }

    fn display_name(
        &self,
        params: &datafusion::logical_expr::expr::AggregateFunctionParams,
    ) -> Result<String> {
        self.inner.inner().display_name(params)
    }

    fn window_function_display_name(
        &self,
        params: &datafusion::logical_expr::expr::WindowFunctionParams,
    ) -> Result<String> {
        self.inner.inner().window_function_display_name(params)
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.inner().return_type(arg_types)
    }

    fn return_field(&self, arg_fields: &[FieldRef]) -> Result<FieldRef> {
        self.inner.inner().return_field(arg_fields)
    }

    fn is_nullable(&self) -> bool {
        self.inner.inner().is_nullable()
    }

    fn accumulator(&self, acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(self.wrap(self.inner.inner().accumulator(acc_args)?))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        self.inner.inner().state_fields(args)
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        // Grouped, each group's answer is handed out once: no repetition to guard.
        self.inner.inner().groups_accumulator_supported(args)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        self.inner.inner().create_groups_accumulator(args)
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(self.wrap(self.inner.inner().create_sliding_accumulator(args)?))
    }

    fn with_beneficial_ordering(
        self: Arc<Self>,
        beneficial_ordering: bool,
    ) -> Result<Option<Arc<dyn AggregateUDFImpl>>> {
        let limit = self.limit;
        Ok(Arc::clone(self.inner.inner())
            .with_beneficial_ordering(beneficial_ordering)?
            .map(|inner| {
                Arc::new(GuardedAggregate {
                    inner: AggregateUDF::new_from_shared_impl(inner),
                    limit,
                }) as Arc<dyn AggregateUDFImpl>
            }))
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        self.inner.inner().order_sensitivity()
    }

    fn simplify(&self) -> Option<AggregateFunctionSimplification> {
        self.inner.inner().simplify()
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        match self.inner.inner().reverse_expr() {
            ReversedUDAF::Reversed(f) => {
                ReversedUDAF::Reversed(Arc::new(AggregateUDF::new_from_impl(GuardedAggregate {
                    inner: f.as_ref().clone(),
                    limit: self.limit,
                })))
            }
            other => other,
        }
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.inner().coerce_types(arg_types)
    }

    fn is_descending(&self) -> Option<bool> {
        self.inner.inner().is_descending()
    }

    fn value_from_stats(&self, statistics_args: &StatisticsArgs) -> Option<ScalarValue> {
        self.inner.inner().value_from_stats(statistics_args)
    }

    fn default_value(&self, data_type: &DataType) -> Result<ScalarValue> {
        self.inner.inner().default_value(data_type)
    }

    fn supports_null_handling_clause(&self) -> bool {
        self.inner.inner().supports_null_handling_clause()
    }

    fn supports_within_group_clause(&self) -> bool {
        self.inner.inner().supports_within_group_clause()
    }

    fn set_monotonicity(&self, data_type: &DataType) -> SetMonotonicity {
        self.inner.inner().set_monotonicity(data_type)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.inner().documentation()
    }
}

/// Counts what an accumulator is fed and what it hands out (see [`GuardedAggregate`]).
#[derive(Debug)]
struct GuardedAccumulator {
    inner: Box<dyn Accumulator>,
    name: String,
    limit: usize,
    fed: usize,
    handed_out: usize,
}

impl Accumulator for GuardedAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.fed = self
            .fed
            .saturating_add(values.iter().map(|v| array_bytes(v.as_ref())).sum());
        self.inner.update_batch(values)
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let v = self.inner.evaluate()?;
        self.handed_out = self.handed_out.saturating_add(v.size());
        let allowed = self.limit.max(self.fed.saturating_mul(WINDOW_REPEAT));
        if self.handed_out > allowed {
            return Err(DataFusionError::ResourcesExhausted(format!(
                "{}: its answers so far take {} bytes, more than {WINDOW_REPEAT} times the {} bytes \
                 it was given and over the limit of {} bytes ([query] max_function_output_bytes); \
                 as a window function over a growing frame each row repeats every earlier row",
                self.name, self.handed_out, self.fed, self.limit
            )));
        }
        Ok(v)
    }

    fn size(&self) -> usize {
        self.inner.size()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.inner.state()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.inner.merge_batch(states)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.inner.retract_batch(values)
    }

    fn supports_retract_batch(&self) -> bool {
        self.inner.supports_retract_batch()
    }
}
