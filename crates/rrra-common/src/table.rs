//! Conversion between the records of [`crate::records`] and Arrow record batches of the
//! schemas in [`crate::schema`].

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int32Array, ListBuilder, RecordBatch, StringArray,
    StringBuilder, UInt32Array,
};
use arrow::datatypes::{Float64Type, Int32Type, UInt32Type};

use crate::records::{Doc, MetricRow, Qrel, Query, RunRow};
use crate::schema::ArtifactKind;
use crate::{Error, Result};

/// A record type stored as one artifact kind.
pub trait Row: Sized + Send + 'static {
    const KIND: ArtifactKind;
    fn to_batch(rows: &[Self]) -> Result<RecordBatch>;
    fn from_batch(batch: &RecordBatch, out: &mut Vec<Self>) -> Result<()>;
}

fn strings<'a>(it: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(it.map(Some).collect::<StringArray>())
}

fn batch(kind: ArtifactKind, columns: Vec<ArrayRef>) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new(kind.schema(), columns)?)
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    batch
        .column_by_name(name)
        .ok_or_else(|| Error::Invalid(format!("column {name:?} is missing")))
}

fn str_column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a StringArray> {
    column(batch, name)?
        .as_string_opt::<i32>()
        .ok_or_else(|| Error::Invalid(format!("column {name:?} is not utf8")))
}

fn prim_column<'a, T: arrow::datatypes::ArrowPrimitiveType>(
    batch: &'a RecordBatch,
    name: &str,
) -> Result<&'a arrow::array::PrimitiveArray<T>> {
    column(batch, name)?
        .as_primitive_opt::<T>()
        .ok_or_else(|| Error::Invalid(format!("column {name:?} has the wrong type")))
}

impl Row for Doc {
    const KIND: ArtifactKind = ArtifactKind::Corpus;
    fn to_batch(rows: &[Self]) -> Result<RecordBatch> {
        batch(
            Self::KIND,
            vec![
                strings(rows.iter().map(|r| r.id.as_str())),
                strings(rows.iter().map(|r| r.title.as_str())),
                strings(rows.iter().map(|r| r.text.as_str())),
            ],
        )
    }
    fn from_batch(b: &RecordBatch, out: &mut Vec<Self>) -> Result<()> {
        let (id, title, text) = (
            str_column(b, "doc_id")?,
            str_column(b, "title")?,
            str_column(b, "text")?,
        );
        out.extend((0..b.num_rows()).map(|i| Doc {
            id: id.value(i).to_string(),
            title: title.value(i).to_string(),
            text: text.value(i).to_string(),
        }));
        Ok(())
    }
}

impl Row for Query {
    const KIND: ArtifactKind = ArtifactKind::Queries;
    fn to_batch(rows: &[Self]) -> Result<RecordBatch> {
        let field = match Self::KIND.schema().field(2).data_type() {
            arrow::datatypes::DataType::List(f) => f.clone(),
            _ => unreachable!("queries.answers is a list"),
        };
        let mut answers = ListBuilder::new(StringBuilder::new()).with_field(field);
        for r in rows {
            match &r.answers {
                Some(list) => {
                    for a in list {
                        answers.values().append_value(a);
                    }
                    answers.append(true);
                }
                None => answers.append(false),
            }
        }
        batch(
            Self::KIND,
            vec![
                strings(rows.iter().map(|r| r.id.as_str())),
                strings(rows.iter().map(|r| r.text.as_str())),
                Arc::new(answers.finish()),
            ],
        )
    }
    fn from_batch(b: &RecordBatch, out: &mut Vec<Self>) -> Result<()> {
        let (id, text) = (str_column(b, "query_id")?, str_column(b, "text")?);
        let answers = column(b, "answers")?
            .as_list_opt::<i32>()
            .ok_or_else(|| Error::Invalid("column \"answers\" is not a list".into()))?;
        for i in 0..b.num_rows() {
            let list = (!answers.is_null(i)).then(|| {
                let values = answers.value(i);
                let values = values.as_string::<i32>();
                values.iter().map(|v| v.unwrap_or("").to_string()).collect()
            });
            out.push(Query {
                id: id.value(i).to_string(),
                text: text.value(i).to_string(),
                answers: list,
            });
        }
        Ok(())
    }
}

impl Row for Qrel {
    const KIND: ArtifactKind = ArtifactKind::Qrels;
    fn to_batch(rows: &[Self]) -> Result<RecordBatch> {
        batch(
            Self::KIND,
            vec![
                strings(rows.iter().map(|r| r.query_id.as_str())),
                strings(rows.iter().map(|r| r.doc_id.as_str())),
                Arc::new(rows.iter().map(|r| r.relevance).collect::<Int32Array>()),
            ],
        )
    }
    fn from_batch(b: &RecordBatch, out: &mut Vec<Self>) -> Result<()> {
        let (q, d) = (str_column(b, "query_id")?, str_column(b, "doc_id")?);
        let rel = prim_column::<Int32Type>(b, "relevance")?;
        out.extend((0..b.num_rows()).map(|i| Qrel {
            query_id: q.value(i).to_string(),
            doc_id: d.value(i).to_string(),
            relevance: rel.value(i),
        }));
        Ok(())
    }
}

impl Row for RunRow {
    const KIND: ArtifactKind = ArtifactKind::Run;
    fn to_batch(rows: &[Self]) -> Result<RecordBatch> {
        batch(
            Self::KIND,
            vec![
                strings(rows.iter().map(|r| r.query_id.as_str())),
                strings(rows.iter().map(|r| r.doc_id.as_str())),
                Arc::new(rows.iter().map(|r| r.rank).collect::<UInt32Array>()),
                Arc::new(rows.iter().map(|r| r.score).collect::<Float64Array>()),
            ],
        )
    }
    fn from_batch(b: &RecordBatch, out: &mut Vec<Self>) -> Result<()> {
        let (q, d) = (str_column(b, "query_id")?, str_column(b, "doc_id")?);
        let rank = prim_column::<UInt32Type>(b, "rank")?;
        let score = prim_column::<Float64Type>(b, "score")?;
        out.extend((0..b.num_rows()).map(|i| RunRow {
            query_id: q.value(i).to_string(),
            doc_id: d.value(i).to_string(),
            rank: rank.value(i),
            score: score.value(i),
        }));
        Ok(())
    }
}

impl Row for MetricRow {
    const KIND: ArtifactKind = ArtifactKind::Metrics;
    fn to_batch(rows: &[Self]) -> Result<RecordBatch> {
        batch(
            Self::KIND,
            vec![
                strings(rows.iter().map(|r| r.query_id.as_str())),
                strings(rows.iter().map(|r| r.measure.as_str())),
                Arc::new(rows.iter().map(|r| r.value).collect::<Float64Array>()),
            ],
        )
    }
    fn from_batch(b: &RecordBatch, out: &mut Vec<Self>) -> Result<()> {
        let (q, m) = (str_column(b, "query_id")?, str_column(b, "measure")?);
        let v = prim_column::<Float64Type>(b, "value")?;
        out.extend((0..b.num_rows()).map(|i| MetricRow {
            query_id: q.value(i).to_string(),
            measure: m.value(i).to_string(),
            value: v.value(i),
        }));
        Ok(())
    }
}
