//! `pipelines/msmarco-full.yaml` loads and validates (no run: it needs the 1 GB download
//! and days of CPU), and says what its header promises: the collection reached through
//! the catalogue, separate train and dev-small queries and qrels, K = 200, METHOD.md's
//! resampling and rerank settings.

use std::path::Path;

use rrra_runner::pipeline::Pipeline;
use serde_json::{Value, json};

fn params<'a>(p: &'a Pipeline, id: &str) -> &'a Value {
    let at = p.position(id).unwrap_or_else(|| panic!("no stage {id}"));
    &p.stages[at].prepared.params
}

#[test]
fn the_full_msmarco_pipeline_validates_with_the_paper_settings() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines/msmarco-full.yaml");
    let p = Pipeline::load(&file).unwrap_or_else(|e| panic!("{e}"));
    let member =
        |collection: &str, member: &str| json!({"collection": collection, "member": member});
    let train = params(&p, "msmarco");
    assert_eq!(
        train["collection"],
        member("msmarco-passage", "collection.tsv")
    );
    assert_eq!(
        train["queries"],
        member("msmarco-passage", "queries.train.tsv")
    );
    assert_eq!(train["qrels"], member("msmarco-passage", "qrels.train.tsv"));
    assert_eq!(
        params(&p, "dev-queries")["path"],
        member("msmarco-passage", "queries.dev.small.tsv")
    );
    assert_eq!(
        params(&p, "dev-qrels")["path"],
        member("msmarco-passage", "qrels.dev.small.tsv")
    );
    for mine in ["mine", "tuned-mine"] {
        assert_eq!(params(&p, mine)["k"], 200, "{mine}");
    }
    let negatives = params(&p, "negatives");
    assert_eq!(
        (
            &negatives["pool"],
            &negatives["gamma"],
            &negatives["a"],
            &negatives["b"]
        ),
        (&json!(200), &json!(1.0), &json!(0.5), &json!(0.0))
    );
    assert_eq!(params(&p, "rerank")["lambda"], 1.0);
    // Every evaluation reads the dev-small qrels, never the training ones.
    for eval in ["zero-shot", "fine-tuned", "rrra"] {
        let at = p.position(eval).unwrap();
        let qrels = p.stages[at]
            .inputs
            .iter()
            .find(|e| e.port == "qrels")
            .unwrap();
        assert_eq!(p.stages[qrels.from_stage].id, "dev-qrels", "{eval}");
    }
}
