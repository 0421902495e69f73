//! Plain-text tables for results a person reads in the terminal.

/// Renders a table with a header row; the first column is left-aligned, the rest right.
pub fn text_table(header: &[String], rows: &[Vec<String>]) -> String {
    let cols = header.len();
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| -> String {
        let parts: Vec<String> = (0..cols)
            .map(|i| {
                let cell = cells.get(i).map(String::as_str).unwrap_or("");
                if i == 0 {
                    format!("{cell:<w$}", w = width[i])
                } else {
                    format!("{cell:>w$}", w = width[i])
                }
            })
            .collect();
        format!("| {} |", parts.join(" | "))
    };
    let rule: Vec<String> = width
        .iter()
        .enumerate()
        .map(|(i, w)| {
            if i == 0 {
                "-".repeat(w + 2)
            } else {
                format!("{}:", "-".repeat(w + 1))
            }
        })
        .collect();
    let mut out = vec![line(header), format!("|{}|", rule.join("|"))];
    out.extend(rows.iter().map(|r| line(r)));
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_as_markdown() {
        let t = text_table(
            &["run".into(), "nDCG@10".into()],
            &[
                vec!["bm25".into(), "0.6650".into()],
                vec!["dense-minilm".into(), "0.6".into()],
            ],
        );
        assert_eq!(
            t,
            "| run          | nDCG@10 |\n|--------------|--------:|\n| bm25         |  0.6650 |\n| dense-minilm |     0.6 |"
        );
    }
}
