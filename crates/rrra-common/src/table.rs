//! Conversion between the records of [`crate::records`] and Arrow record batches of the
//! schemas in [`crate::schema`].

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float32Builder, Float64Array, Int32Array, ListArray,
    ListBuilder, RecordBatch, StringArray, StringBuilder, UInt32Array,
};
use arrow::datatypes::{DataType, Float32Type, Float64Type, Int32Type, UInt32Type};

use crate::records::{
    Candidate, Doc, Example, MetricRow, Qrel, Query, RunRow, Scored, TrainLogRow,
};
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

/// The item field of list column `index` of `kind`'s schema.
fn item_field(kind: ArtifactKind, index: usize) -> Arc<arrow::datatypes::Field> {
    match kind.schema().field(index).data_type() {
        DataType::List(f) => f.clone(),
        other => unreachable!("{kind} column {index} is {other}, not a list"),
    }
}

/// A nullable list-of-strings column.
fn string_lists<'a>(
    kind: ArtifactKind,
    index: usize,
    rows: impl Iterator<Item = Option<&'a [String]>>,
) -> ArrayRef {
    let mut out = ListBuilder::new(StringBuilder::new()).with_field(item_field(kind, index));
    for r in rows {
        match r {
            Some(list) => {
                for a in list {
                    out.values().append_value(a);
                }
                out.append(true);
            }
            None => out.append(false),
        }
    }
    Arc::new(out.finish())
}

fn list_column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ListArray> {
    column(batch, name)?
        .as_list_opt::<i32>()
        .ok_or_else(|| Error::Invalid(format!("column {name:?} is not a list")))
}

/// Row `i` of a list-of-strings column, `None` where null.
fn string_list(list: &ListArray, i: usize) -> Option<Vec<String>> {
    (!list.is_null(i)).then(|| {
        let values = list.value(i);
        let values = values.as_string::<i32>();
        values.iter().map(|v| v.unwrap_or("").to_string()).collect()
    })
}

impl Row for Query {
    const KIND: ArtifactKind = ArtifactKind::Queries;
    fn to_batch(rows: &[Self]) -> Result<RecordBatch> {
        batch(
            Self::KIND,
            vec![
                strings(rows.iter().map(|r| r.id.as_str())),
                strings(rows.iter().map(|r| r.text.as_str())),
                string_lists(Self::KIND, 2, rows.iter().map(|r| r.answers.as_deref())),
            ],
        )
    }
    fn from_batch(b: &RecordBatch, out: &mut Vec<Self>) -> Result<()> {
        let (id, text) = (str_column(b, "query_id")?, str_column(b, "text")?);
        let answers = list_column(b, "answers")?;
        for i in 0..b.num_rows() {
            let list = string_list(answers, i);
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

/// The candidate columns, shared by the `candidates` and `scored` artifacts.
fn candidate_columns<'a>(rows: impl Iterator<Item = &'a Candidate> + Clone) -> Vec<ArrayRef> {
    vec![
        strings(rows.clone().map(|r| r.query_id.as_str())),
        strings(rows.clone().map(|r| r.doc_id.as_str())),
        Arc::new(rows.clone().map(|r| r.rank).collect::<UInt32Array>()),
        Arc::new(rows.clone().map(|r| r.score).collect::<Float64Array>()),
        Arc::new(rows.map(|r| Some(r.positive)).collect::<BooleanArray>()),
    ]
}

impl Row for Candidate {
    const KIND: ArtifactKind = ArtifactKind::Candidates;
    fn to_batch(rows: &[Self]) -> Result<RecordBatch> {
        batch(Self::KIND, candidate_columns(rows.iter()))
    }
    fn from_batch(b: &RecordBatch, out: &mut Vec<Self>) -> Result<()> {
        let (q, d) = (str_column(b, "query_id")?, str_column(b, "doc_id")?);
        let rank = prim_column::<UInt32Type>(b, "rank")?;
        let score = prim_column::<Float64Type>(b, "score")?;
        let positive = column(b, "positive")?
            .as_boolean_opt()
            .ok_or_else(|| Error::Invalid("column \"positive\" is not boolean".into()))?;
        out.extend((0..b.num_rows()).map(|i| Candidate {
            query_id: q.value(i).to_string(),
            doc_id: d.value(i).to_string(),
            rank: rank.value(i),
            score: score.value(i),
            positive: positive.value(i),
        }));
        Ok(())
    }
}

impl Row for Scored {
    const KIND: ArtifactKind = ArtifactKind::Scored;
    fn to_batch(rows: &[Self]) -> Result<RecordBatch> {
        let f64s = |f: fn(&Self) -> f64| -> ArrayRef {
            Arc::new(rows.iter().map(f).collect::<Float64Array>())
        };
        let mut columns = candidate_columns(rows.iter().map(|r| &r.candidate));
        columns.extend([f64s(|r| r.qa_score), f64s(|r| r.s_fn), f64s(|r| r.p_rel)]);
        batch(Self::KIND, columns)
    }
    fn from_batch(b: &RecordBatch, out: &mut Vec<Self>) -> Result<()> {
        let mut candidates = Vec::with_capacity(b.num_rows());
        Candidate::from_batch(b, &mut candidates)?;
        let qa = prim_column::<Float64Type>(b, "qa_score")?;
        let s_fn = prim_column::<Float64Type>(b, "s_fn")?;
        let p_rel = prim_column::<Float64Type>(b, "p_rel")?;
        out.extend(
            candidates
                .into_iter()
                .enumerate()
                .map(|(i, candidate)| Scored {
                    candidate,
                    qa_score: qa.value(i),
                    s_fn: s_fn.value(i),
                    p_rel: p_rel.value(i),
                }),
        );
        Ok(())
    }
}

impl Row for Example {
    const KIND: ArtifactKind = ArtifactKind::Examples;
    fn to_batch(rows: &[Self]) -> Result<RecordBatch> {
        let mut weights =
            ListBuilder::new(Float32Builder::new()).with_field(item_field(Self::KIND, 3));
        for r in rows {
            match &r.weights {
                Some(w) => {
                    weights.values().append_slice(w);
                    weights.append(true);
                }
                None => weights.append(false),
            }
        }
        batch(
            Self::KIND,
            vec![
                strings(rows.iter().map(|r| r.query_id.as_str())),
                strings(rows.iter().map(|r| r.positive_id.as_str())),
                string_lists(Self::KIND, 2, rows.iter().map(|r| Some(&r.negatives[..]))),
                Arc::new(weights.finish()),
            ],
        )
    }
    fn from_batch(b: &RecordBatch, out: &mut Vec<Self>) -> Result<()> {
        let (q, p) = (str_column(b, "query_id")?, str_column(b, "positive_id")?);
        let negatives = list_column(b, "negatives")?;
        let weights = list_column(b, "weights")?;
        for i in 0..b.num_rows() {
            let w = (!weights.is_null(i)).then(|| {
                let values = weights.value(i);
                values.as_primitive::<Float32Type>().values().to_vec()
            });
            out.push(Example {
                query_id: q.value(i).to_string(),
                positive_id: p.value(i).to_string(),
                negatives: string_list(negatives, i).unwrap_or_default(),
                weights: w,
            });
        }
        Ok(())
    }
}

impl Row for TrainLogRow {
    const KIND: ArtifactKind = ArtifactKind::TrainLog;
    fn to_batch(rows: &[Self]) -> Result<RecordBatch> {
        let f64s = |f: fn(&Self) -> f64| -> ArrayRef {
            Arc::new(rows.iter().map(f).collect::<Float64Array>())
        };
        batch(
            Self::KIND,
            vec![
                Arc::new(rows.iter().map(|r| r.step).collect::<UInt32Array>()),
                Arc::new(rows.iter().map(|r| r.epoch).collect::<UInt32Array>()),
                f64s(|r| r.loss),
                f64s(|r| r.lr),
                f64s(|r| r.samples_per_s),
            ],
        )
    }
    fn from_batch(b: &RecordBatch, out: &mut Vec<Self>) -> Result<()> {
        let step = prim_column::<UInt32Type>(b, "step")?;
        let epoch = prim_column::<UInt32Type>(b, "epoch")?;
        let loss = prim_column::<Float64Type>(b, "loss")?;
        let lr = prim_column::<Float64Type>(b, "lr")?;
        let sps = prim_column::<Float64Type>(b, "samples_per_s")?;
        out.extend((0..b.num_rows()).map(|i| TrainLogRow {
            step: step.value(i),
            epoch: epoch.value(i),
            loss: loss.value(i),
            lr: lr.value(i),
            samples_per_s: sps.value(i),
        }));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<R: Row + PartialEq + std::fmt::Debug + Clone>(rows: Vec<R>) {
        let batch = R::to_batch(&rows).unwrap();
        let mut back = Vec::new();
        R::from_batch(&batch, &mut back).unwrap();
        assert_eq!(back, rows);
    }

    #[test]
    fn training_kinds_round_trip() {
        round_trip(vec![
            Candidate {
                query_id: "q1".into(),
                doc_id: "d1".into(),
                rank: 1,
                score: 0.5,
                positive: true,
            },
            Candidate {
                query_id: "q1".into(),
                doc_id: "d9".into(),
                rank: 0,
                score: -0.25,
                positive: false,
            },
        ]);
        round_trip(vec![
            Example {
                query_id: "q1".into(),
                positive_id: "d1".into(),
                negatives: vec!["d2".into(), "d3".into()],
                weights: Some(vec![0.5, 1.0]),
            },
            Example {
                query_id: "q2".into(),
                positive_id: "d4".into(),
                negatives: vec![],
                weights: None,
            },
        ]);
        round_trip(vec![Scored {
            candidate: Candidate {
                query_id: "q1".into(),
                doc_id: "d2".into(),
                rank: 2,
                score: 0.75,
                positive: false,
            },
            qa_score: 0.8,
            s_fn: 0.125,
            p_rel: 0.25,
        }]);
        round_trip(vec![TrainLogRow {
            step: 3,
            epoch: 1,
            loss: 1.5,
            lr: 2e-5,
            samples_per_s: 10.0,
        }]);
    }
}
