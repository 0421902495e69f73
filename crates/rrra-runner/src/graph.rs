//! The pipeline DAG as Mermaid or Graphviz DOT text.

use crate::pipeline::Pipeline;

pub fn mermaid(p: &Pipeline) -> String {
    let mut out = String::from("flowchart LR\n");
    for s in &p.stages {
        out += &format!(
            "    {}[\"{}<br/><small>{}</small>\"]\n",
            s.id,
            s.id,
            s.stage.kind()
        );
    }
    for s in &p.stages {
        for e in &s.inputs {
            let from = &p.stages[e.from_stage].id;
            out += &format!("    {from} -->|{}| {}\n", e.from_port, s.id);
        }
    }
    out
}

pub fn dot(p: &Pipeline) -> String {
    let mut out = format!(
        "digraph \"{}\" {{\n    rankdir=LR;\n    node [shape=box];\n",
        p.name
    );
    for s in &p.stages {
        out += &format!(
            "    \"{}\" [label=\"{}\\n{}\"];\n",
            s.id,
            s.id,
            s.stage.kind()
        );
    }
    for s in &p.stages {
        for e in &s.inputs {
            let from = &p.stages[e.from_stage].id;
            out += &format!(
                "    \"{from}\" -> \"{}\" [label=\"{}\"];\n",
                s.id, e.from_port
            );
        }
    }
    out + "}\n"
}
