//! `xtask show`: an artifact's rows as a text table, after a column selection, a `--where`
//! filter and a head, with the number of rows the filter matched.

use std::path::Path;

use polars::prelude::*;

use crate::{Filter, InspectError, Result, at};

/// What to show of an artifact.
#[derive(Debug, Clone, Default)]
pub struct View {
    /// Columns to keep, in this order (empty: all).
    pub columns: Vec<String>,
    /// A `--where` expression (see [`crate::filter`]).
    pub filter: Option<String>,
    /// Rows to show, at most.
    pub head: usize,
}

/// The rows of `path` that `view` selects (at most `view.head`) and how many matched.
/// Without a filter only the head of the selected columns is read; with one, the whole
/// artifact is read and filtered.
pub fn select(path: &Path, view: &View) -> Result<(DataFrame, usize)> {
    let names = crate::column_names(path)?;
    if let Some(missing) = view.columns.iter().find(|c| !names.contains(c)) {
        return Err(InspectError::Invalid {
            path: path.to_path_buf(),
            message: format!(
                "no column {missing:?}; the columns are {}",
                names.join(", ")
            ),
        });
    }
    let columns = (!view.columns.is_empty()).then(|| view.columns.clone());
    let Some(text) = &view.filter else {
        let rows = crate::read_parquet(path, columns, Some((0, view.head)))?;
        return Ok((rows, crate::count_rows(path)?));
    };
    let filter = Filter::parse(text)?;
    let all = crate::read_parquet(path, None, None)?;
    let mask = filter.mask(text, &all)?;
    let mut matched = at(path, all.filter(&mask))?;
    if let Some(columns) = columns {
        matched = at(path, matched.select(columns))?;
    }
    Ok((matched.head(Some(view.head)), matched.height()))
}

/// `df` as an aligned text table; long texts and lists are shortened.
pub fn render(df: &DataFrame) -> String {
    let header: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|n| n.to_string())
        .collect();
    let rows: Vec<Vec<String>> = (0..df.height())
        .map(|i| {
            df.columns()
                .iter()
                .map(|c| c.get(i).map(|v| cell(&v)).unwrap_or_default())
                .collect()
        })
        .collect();
    rrra_common::report::text_table(&header, &rows)
}

const TEXT_CHARS: usize = 60;
const LIST_ITEMS: usize = 4;

fn shorten(s: &str) -> String {
    let one_line = s.replace(['\n', '\t', '\r'], " ");
    if one_line.chars().count() <= TEXT_CHARS {
        one_line
    } else {
        let cut: String = one_line.chars().take(TEXT_CHARS - 1).collect();
        format!("{cut}…")
    }
}

fn cell(v: &AnyValue<'_>) -> String {
    match v {
        AnyValue::Null => "null".into(),
        AnyValue::String(s) => shorten(s),
        AnyValue::StringOwned(s) => shorten(s),
        AnyValue::Float64(x) => float(*x),
        AnyValue::Float32(x) => float(f64::from(*x)),
        AnyValue::List(s) => {
            let items: Vec<String> = (0..s.len().min(LIST_ITEMS))
                .map(|i| s.get(i).map(|v| cell(&v)).unwrap_or_default())
                .collect();
            let more = if s.len() > LIST_ITEMS { ", …" } else { "" };
            format!("[{}{more}] ({})", items.join(", "), s.len())
        }
        other => other.to_string(),
    }
}

fn float(x: f64) -> String {
    let s = format!("{x:.6}");
    let s = s.trim_end_matches('0');
    s.strip_suffix('.').unwrap_or(s).to_string()
}
