//! Fine-tuning as a pipeline stage runs it, usable by other crates' stages (`train.joint`):
//! [`fine_tune`] (the starting model of a [`TrainConfig`] resolved, the training loop of
//! [`crate::train`], the export and the training log) and [`load_training_data`] (the
//! examples and the texts they name).

use std::collections::HashMap;

use rrra_common::artifact::{for_each_batch, read_rows, write_rows};
use rrra_common::records::{Doc, Example, Query};
use rrra_common::stage::{StageContext, StageReport};

use crate::doc_text;
use crate::export::export;
use crate::fetch::model_of;
use crate::settings::Resolved;
use crate::train::{Auxiliary, RunSettings, TrainConfig, TrainData, TrainExample, train};

/// Fine-tunes on `data` as `train.biencoder` does (with `aux`'s objective added, if given),
/// exports the model and its training config into the `model` output and writes the `log`.
pub fn fine_tune(
    p: &TrainConfig,
    ctx: &StageContext<'_>,
    data: &TrainData,
    aux: Option<&mut dyn Auxiliary>,
) -> rrra_common::Result<StageReport> {
    let invalid = |e: crate::Error| rrra_common::Error::Invalid(e.to_string());
    let (base, source) = model_of(&p.model, ctx)?;
    // Training truncates at its own `max_len` and `query_max_len`; the model's length goes
    // into the export.
    let resolved = Resolved::merge(
        p.export_max_len,
        p.pooling,
        p.normalize,
        None,
        &source.settings(&base)?,
    );
    let run = RunSettings {
        seed: ctx.seed,
        pooling: resolved.pooling,
        normalize: resolved.normalize,
    };
    tracing::info!(
        model = %base.display(),
        pooling = %resolved.pooling,
        normalize = resolved.normalize,
        query_prompt = %resolved.query_prompt,
        doc_prompt = %resolved.doc_prompt,
        "training settings"
    );
    // The model's prompts go before the texts, as encoding puts them.
    let prompted;
    let data = if resolved.query_prompt.is_empty() && resolved.doc_prompt.is_empty() {
        data
    } else {
        let prefix = |prompt: &str, texts: &[String]| -> Vec<String> {
            texts.iter().map(|t| format!("{prompt}{t}")).collect()
        };
        prompted = TrainData {
            queries: prefix(&resolved.query_prompt, &data.queries),
            docs: prefix(&resolved.doc_prompt, &data.docs),
            examples: data.examples.clone(),
        };
        &prompted
    };
    let (trained, summary) =
        train(&base, p, &run, data, &ctx.work_dir, ctx.progress, aux).map_err(invalid)?;
    let out = ctx.output_dir("model")?;
    export(
        &trained,
        &base,
        &out,
        resolved.max_len,
        run.pooling,
        run.normalize,
    )
    .map_err(invalid)?;
    let saved = out.join("rrra_train.json");
    std::fs::write(
        &saved,
        serde_json::to_string_pretty(&serde_json::json!({"params": p, "config": p.recorded(&run)}))
            .expect("config serialises"),
    )
    .map_err(|e| rrra_common::Error::io(&saved, e))?;
    write_rows(&ctx.output("log"), summary.log.iter().cloned())?;
    let last = summary.log.last().map(|r| r.loss).unwrap_or(f64::NAN);
    let first = summary.log.first().map(|r| r.loss).unwrap_or(f64::NAN);
    let sps = summary.log[summary.resumed_at..]
        .iter()
        .map(|r| r.samples_per_s)
        .sum::<f64>()
        / (summary.steps - summary.resumed_at).max(1) as f64;
    Ok(StageReport {
        metrics: [
            ("examples".to_string(), data.examples.len() as f64),
            ("steps".to_string(), summary.steps as f64),
            ("resumed_at_step".to_string(), summary.resumed_at as f64),
            ("first_loss".to_string(), first),
            ("final_loss".to_string(), last),
            ("samples_per_s".to_string(), sps),
            ("train_seconds".to_string(), summary.seconds),
        ]
        .into(),
        table: None,
    })
}

/// The index in [`TrainData`] of each query and document id.
#[derive(Debug, Clone, Default)]
pub struct TrainIds {
    pub queries: HashMap<String, usize>,
    pub docs: HashMap<String, usize>,
}

/// Reads the examples and the texts they name (only those) from the stage's `examples`,
/// `corpus` and `queries` inputs.
pub fn load_training_data(ctx: &StageContext<'_>) -> rrra_common::Result<(TrainData, TrainIds)> {
    let examples_path = ctx.input("examples")?;
    let examples: Vec<Example> = read_rows(examples_path)?;
    let mut query_index: HashMap<String, usize> = HashMap::new();
    let mut doc_index: HashMap<String, usize> = HashMap::new();
    let index = |map: &mut HashMap<String, usize>, id: &str| -> usize {
        let n = map.len();
        *map.entry(id.to_string()).or_insert(n)
    };
    let mut out = TrainData::default();
    for e in &examples {
        out.examples.push(TrainExample {
            query: index(&mut query_index, &e.query_id),
            positive: index(&mut doc_index, &e.positive_id),
            negatives: e
                .negatives
                .iter()
                .map(|d| index(&mut doc_index, d))
                .collect(),
            weights: e.weights.clone(),
        });
    }
    out.queries = vec![String::new(); query_index.len()];
    out.docs = vec![String::new(); doc_index.len()];
    let mut seen_docs = 0;
    for_each_batch::<Doc>(ctx.input("corpus")?, |docs| {
        for d in docs {
            if let Some(&i) = doc_index.get(&d.id) {
                out.docs[i] = doc_text(&d, "");
                seen_docs += 1;
            }
        }
        Ok(())
    })?;
    let mut seen_queries = 0;
    for_each_batch::<Query>(ctx.input("queries")?, |queries| {
        for q in queries {
            if let Some(&i) = query_index.get(&q.id) {
                out.queries[i] = q.text;
                seen_queries += 1;
            }
        }
        Ok(())
    })?;
    let missing = |map: &HashMap<String, usize>, texts: &[String]| {
        map.iter()
            .filter(|(_, i)| texts[**i].is_empty())
            .map(|(id, _)| id.clone())
            .min()
    };
    if seen_docs < doc_index.len()
        && let Some(id) = missing(&doc_index, &out.docs)
    {
        return Err(rrra_common::Error::file(
            examples_path,
            format!("document {id:?} of the examples is not in the corpus input"),
        ));
    }
    if seen_queries < query_index.len()
        && let Some(id) = missing(&query_index, &out.queries)
    {
        return Err(rrra_common::Error::file(
            examples_path,
            format!("query {id:?} of the examples is not in the queries input"),
        ));
    }
    let ids = TrainIds {
        queries: query_index,
        docs: doc_index,
    };
    Ok((out, ids))
}
