//! The `--where` grammar of `xtask show`: comparisons of a column with a literal, joined by
//! `and` / `or` (`and` binds tighter), evaluated into a polars row mask after checking each
//! column exists and has the literal's type.
//!
//! ```text
//! expr  := conj ("or" conj)*          conj := cmp ("and" cmp)*
//! cmp   := COLUMN OP VALUE            OP   := == | != | < | <= | > | >=
//! VALUE := number | "text" | 'text' | true | false
//! ```

use polars::prelude::*;

use crate::InspectError;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A literal on the right of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Number(f64),
    Text(String),
    Bool(bool),
}

/// A parsed `--where` expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Cmp {
        column: String,
        op: Op,
        value: Value,
    },
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Op(Op),
    Value(Value),
    And,
    Or,
}

fn err(text: &str, message: impl Into<String>) -> InspectError {
    InspectError::Where {
        expr: text.to_string(),
        message: message.into(),
    }
}

fn tokenize(text: &str) -> Result<Vec<(usize, Token)>, InspectError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let token = if c == '"' || c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => {
                        return Err(err(
                            text,
                            format!("the text opened at character {} is not closed", start + 1),
                        ));
                    }
                    Some('\\') if chars.get(i + 1).is_some() => {
                        s.push(chars[i + 1]);
                        i += 2;
                    }
                    Some(&q) if q == c => {
                        i += 1;
                        break;
                    }
                    Some(&other) => {
                        s.push(other);
                        i += 1;
                    }
                }
            }
            Token::Value(Value::Text(s))
        } else if c.is_ascii_digit() || (c == '-' || c == '.') && i + 1 < chars.len() {
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '.' | '-' | '+'))
            {
                i += 1;
            }
            let s: String = chars[start..i].iter().collect();
            let n = s.parse::<f64>().map_err(|_| {
                err(
                    text,
                    format!("`{s}` at character {} is not a number", start + 1),
                )
            })?;
            Token::Value(Value::Number(n))
        } else if c.is_alphabetic() || c == '_' {
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let s: String = chars[start..i].iter().collect();
            match s.as_str() {
                "and" | "AND" => Token::And,
                "or" | "OR" => Token::Or,
                "true" => Token::Value(Value::Bool(true)),
                "false" => Token::Value(Value::Bool(false)),
                _ => Token::Ident(s),
            }
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let (op, len) = match (two.as_str(), c) {
                ("==", _) => (Token::Op(Op::Eq), 2),
                ("!=", _) => (Token::Op(Op::Ne), 2),
                ("<=", _) => (Token::Op(Op::Le), 2),
                (">=", _) => (Token::Op(Op::Ge), 2),
                ("&&", _) => (Token::And, 2),
                ("||", _) => (Token::Or, 2),
                (_, '<') => (Token::Op(Op::Lt), 1),
                (_, '>') => (Token::Op(Op::Gt), 1),
                (_, '=') => {
                    return Err(err(
                        text,
                        format!("`=` at character {}: compare with `==`", i + 1),
                    ));
                }
                _ => {
                    return Err(err(
                        text,
                        format!("unexpected `{c}` at character {}", i + 1),
                    ));
                }
            };
            i += len;
            op
        };
        out.push((start, token));
    }
    Ok(out)
}

const SHAPE: &str = "expected COLUMN OP VALUE (OP one of == != < <= > >=; VALUE a number, \"text\" or true/false), joined by and/or";

impl Filter {
    /// Parses `text`; the error names the character where parsing failed.
    pub fn parse(text: &str) -> Result<Filter, InspectError> {
        let tokens = tokenize(text)?;
        let mut at = 0;
        let filter = parse_or(text, &tokens, &mut at)?;
        if let Some((pos, _)) = tokens.get(at) {
            return Err(err(
                text,
                format!("unexpected input at character {}: {SHAPE}", pos + 1),
            ));
        }
        Ok(filter)
    }

    /// The columns the filter reads.
    pub fn columns(&self) -> Vec<String> {
        match self {
            Filter::Cmp { column, .. } => vec![column.clone()],
            Filter::And(a, b) | Filter::Or(a, b) => {
                let mut c = a.columns();
                c.extend(b.columns());
                c
            }
        }
    }

    /// The rows of `df` the filter keeps (`text` is the filter as typed, for errors); a
    /// comparison with a null value keeps nothing.
    pub fn mask(&self, text: &str, df: &DataFrame) -> Result<BooleanChunked, InspectError> {
        let polars = |e: PolarsError| err(text, e.to_string());
        Ok(match self {
            Filter::And(a, b) => &a.mask(text, df)? & &b.mask(text, df)?,
            Filter::Or(a, b) => &a.mask(text, df)? | &b.mask(text, df)?,
            Filter::Cmp { column, op, value } => {
                let series = df
                    .column(column)
                    .map_err(|_| {
                        let names: Vec<_> =
                            df.get_column_names().iter().map(|n| n.as_str()).collect();
                        err(
                            text,
                            format!("no column {column:?}; the columns are {}", names.join(", ")),
                        )
                    })?
                    .as_materialized_series()
                    .clone();
                let dtype = series.dtype().clone();
                let (left, right) = match value {
                    Value::Number(n) if dtype.is_primitive_numeric() => (
                        series.cast(&DataType::Float64).map_err(polars)?,
                        Series::new("literal".into(), [*n]),
                    ),
                    Value::Text(s) if dtype == DataType::String => {
                        (series, Series::new("literal".into(), [s.as_str()]))
                    }
                    Value::Bool(b) if dtype == DataType::Boolean => {
                        if !matches!(op, Op::Eq | Op::Ne) {
                            return Err(err(
                                text,
                                format!("column {column:?} is boolean: compare it with == or !="),
                            ));
                        }
                        (series, Series::new("literal".into(), [*b]))
                    }
                    _ => {
                        return Err(err(
                            text,
                            format!(
                                "column {column:?} holds {dtype}, which cannot be compared with {}",
                                match value {
                                    Value::Number(n) => format!("the number {n}"),
                                    Value::Text(s) => format!("the text {s:?}"),
                                    Value::Bool(b) => format!("{b}"),
                                }
                            ),
                        ));
                    }
                };
                match op {
                    Op::Eq => left.equal(&right),
                    Op::Ne => left.not_equal(&right),
                    Op::Lt => left.lt(&right),
                    Op::Le => left.lt_eq(&right),
                    Op::Gt => left.gt(&right),
                    Op::Ge => left.gt_eq(&right),
                }
                .map_err(polars)?
            }
        })
    }
}

fn parse_or(text: &str, t: &[(usize, Token)], at: &mut usize) -> Result<Filter, InspectError> {
    let mut left = parse_and(text, t, at)?;
    while matches!(t.get(*at), Some((_, Token::Or))) {
        *at += 1;
        left = Filter::Or(Box::new(left), Box::new(parse_and(text, t, at)?));
    }
    Ok(left)
}

fn parse_and(text: &str, t: &[(usize, Token)], at: &mut usize) -> Result<Filter, InspectError> {
    let mut left = parse_cmp(text, t, at)?;
    while matches!(t.get(*at), Some((_, Token::And))) {
        *at += 1;
        left = Filter::And(Box::new(left), Box::new(parse_cmp(text, t, at)?));
    }
    Ok(left)
}

fn parse_cmp(text: &str, t: &[(usize, Token)], at: &mut usize) -> Result<Filter, InspectError> {
    let where_ = |i: usize| match t.get(i) {
        Some((pos, _)) => format!("at character {}", pos + 1),
        None => "at the end".to_string(),
    };
    let Some((_, Token::Ident(column))) = t.get(*at) else {
        return Err(err(text, format!("{}: {SHAPE}", where_(*at))));
    };
    let Some((_, Token::Op(op))) = t.get(*at + 1) else {
        return Err(err(
            text,
            format!(
                "{}: expected an operator after {column:?}: {SHAPE}",
                where_(*at + 1)
            ),
        ));
    };
    let Some((_, Token::Value(value))) = t.get(*at + 2) else {
        return Err(err(
            text,
            format!(
                "{}: expected a value after the operator: {SHAPE}",
                where_(*at + 2)
            ),
        ));
    };
    *at += 3;
    Ok(Filter::Cmp {
        column: column.clone(),
        op: *op,
        value: value.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(column: &str, op: Op, value: Value) -> Filter {
        Filter::Cmp {
            column: column.into(),
            op,
            value,
        }
    }

    #[test]
    fn parses_comparisons_with_and_binding_tighter_than_or() {
        assert_eq!(
            Filter::parse("score > 0.5").unwrap(),
            cmp("score", Op::Gt, Value::Number(0.5))
        );
        assert_eq!(
            Filter::parse(r#"query_id == "q1""#).unwrap(),
            cmp("query_id", Op::Eq, Value::Text("q1".into()))
        );
        assert_eq!(
            Filter::parse("a <= -1e-3 or b != 'x y' and positive == true").unwrap(),
            Filter::Or(
                Box::new(cmp("a", Op::Le, Value::Number(-1e-3))),
                Box::new(Filter::And(
                    Box::new(cmp("b", Op::Ne, Value::Text("x y".into()))),
                    Box::new(cmp("positive", Op::Eq, Value::Bool(true))),
                )),
            )
        );
        assert_eq!(
            Filter::parse("rank<3 && rank>=1").unwrap(),
            Filter::And(
                Box::new(cmp("rank", Op::Lt, Value::Number(3.0))),
                Box::new(cmp("rank", Op::Ge, Value::Number(1.0))),
            )
        );
    }

    #[test]
    fn malformed_expressions_say_where_and_what_was_expected() {
        for (text, expected) in [
            ("score = 1", "compare with `==`"),
            ("score >", "at the end: expected a value"),
            ("score 0.5", "at character 7: expected an operator"),
            (
                "\"q1\" == query_id",
                "at character 1: expected COLUMN OP VALUE",
            ),
            ("score > 0.5 rank < 3", "unexpected input at character 13"),
            ("id == \"open", "not closed"),
            ("score > 1.2.3", "`1.2.3` at character 9 is not a number"),
            ("score ~ 1", "unexpected `~` at character 7"),
        ] {
            let shown = Filter::parse(text).unwrap_err().to_string();
            assert!(shown.contains(expected), "{text}: {shown}");
            assert!(shown.contains(&format!("{text:?}")), "{text}: {shown}");
        }
    }

    #[test]
    fn masks_keep_the_matching_rows_and_check_columns_and_types() {
        let df = DataFrame::new_infer_height(vec![
            Column::new("query_id".into(), ["q1", "q2", "q3"]),
            Column::new("rank".into(), [1u32, 2, 3]),
            Column::new("score".into(), [0.9f64, 0.5, 0.1]),
            Column::new("positive".into(), [true, false, true]),
        ])
        .unwrap();
        let keep = |text: &str| -> Vec<bool> {
            let mask = Filter::parse(text).unwrap().mask(text, &df).unwrap();
            mask.iter().map(|v| v.unwrap_or(false)).collect()
        };
        assert_eq!(keep("score > 0.5"), [true, false, false]);
        assert_eq!(
            keep("score >= 0.5 and positive == true"),
            [true, false, false]
        );
        assert_eq!(keep("rank == 3 or query_id == \"q2\""), [false, true, true]);
        assert_eq!(keep("query_id != 'q1' and rank < 3"), [false, true, false]);
        assert_eq!(
            keep("rank <= 1 or rank > 2 and positive == false"),
            [true, false, false]
        );
        let fails = |text: &str| {
            Filter::parse(text)
                .unwrap()
                .mask(text, &df)
                .unwrap_err()
                .to_string()
        };
        let shown = fails("scor > 0.5");
        assert!(
            shown.contains("no column \"scor\"")
                && shown.contains("query_id, rank, score, positive"),
            "{shown}"
        );
        let shown = fails("query_id > 3");
        assert!(
            shown.contains("\"query_id\" holds str, which cannot be compared with the number 3"),
            "{shown}"
        );
        let shown = fails("positive < true");
        assert!(shown.contains("compare it with == or !="), "{shown}");
    }
}
