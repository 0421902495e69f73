//! The report's SVG plots (plotters): bars with error bars and histograms.

use std::path::Path;

use anyhow::Result;
use plotters::prelude::*;

pub(super) fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    let pad = ((hi - lo) * 0.1).max(1e-3);
    (lo - pad, hi + pad)
}

pub(super) fn bar_chart(path: &Path, title: &str, bars: &[(String, f64, f64)]) -> Result<()> {
    let root = SVGBackend::new(path, (160 + 90 * bars.len() as u32, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let top = bars.iter().map(|b| b.1 + b.2).fold(0.0, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(60)
        .y_label_area_size(56)
        .build_cartesian_2d((0..bars.len()).into_segmented(), 0.0..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_label_formatter(&|x| match x {
            SegmentValue::CenterOf(i) => bars.get(*i).map_or(String::new(), |b| b.0.clone()),
            _ => String::new(),
        })
        .draw()?;
    chart.draw_series(bars.iter().enumerate().map(|(i, b)| {
        let mut r = Rectangle::new(
            [
                (SegmentValue::Exact(i), 0.0),
                (SegmentValue::Exact(i + 1), b.1),
            ],
            BLUE.mix(0.5).filled(),
        );
        r.set_margin(0, 0, 12, 12);
        r
    }))?;
    chart.draw_series(bars.iter().enumerate().map(|(i, b)| {
        ErrorBar::new_vertical(
            SegmentValue::CenterOf(i),
            b.1 - b.2,
            b.1,
            b.1 + b.2,
            BLACK.filled(),
            10,
        )
    }))?;
    root.present()?;
    Ok(())
}

pub(super) fn histogram(path: &Path, title: &str, groups: &[(&str, &[f64])]) -> Result<()> {
    const BINS: usize = 20;
    let root = SVGBackend::new(path, (640, 400)).into_drawing_area();
    root.fill(&WHITE)?;
    // Fractions per bin, so groups of very different sizes compare.
    let hists: Vec<Vec<f64>> = groups
        .iter()
        .map(|(_, v)| {
            let mut h = vec![0.0; BINS];
            for &x in *v {
                h[((x.clamp(0.0, 1.0) * BINS as f64) as usize).min(BINS - 1)] += 1.0;
            }
            let n = v.len().max(1) as f64;
            h.into_iter().map(|c| c / n).collect()
        })
        .collect();
    let top = hists.iter().flatten().copied().fold(0.0, f64::max) * 1.1 + 1e-9;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..1.0, 0.0..top)?;
    chart
        .configure_mesh()
        .x_desc("s_FN")
        .y_desc("fraction of the group")
        .draw()?;
    for (g, ((label, _), h)) in groups.iter().zip(&hists).enumerate() {
        let color = Palette99::pick(g).to_rgba();
        let w = 1.0 / BINS as f64;
        chart
            .draw_series(h.iter().enumerate().map(|(i, &f)| {
                Rectangle::new(
                    [(i as f64 * w, 0.0), ((i + 1) as f64 * w, f)],
                    color.mix(0.4).filled(),
                )
            }))?
            .label(*label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plots_are_written_as_svg() {
        let dir = tempfile::tempdir().unwrap();
        let bars = dir.path().join("b.svg");
        bar_chart(
            &bars,
            "t",
            &[("a".into(), 0.5, 0.1), ("b".into(), 0.6, 0.05)],
        )
        .unwrap();
        let hist = dir.path().join("h.svg");
        histogram(&hist, "t", &[("x", &[0.1, 0.2, 0.9]), ("y", &[0.5])]).unwrap();
        for f in [bars, hist] {
            let text = std::fs::read_to_string(&f).unwrap();
            assert!(
                text.starts_with("<svg") && text.contains("<rect"),
                "{}",
                f.display()
            );
        }
    }
}
