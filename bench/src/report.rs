//! The one table: metric | value | baseline | ratio | goal | met?

use std::fmt::Write;

pub struct Row {
    pub metric: String,
    pub value: String,
    pub baseline: String,
    pub ratio: String,
    pub goal: String,
    /// `None`: no goal for this figure (context only).
    pub met: Option<bool>,
}

impl Row {
    pub fn new(metric: impl Into<String>, value: impl Into<String>) -> Row {
        Row {
            metric: metric.into(),
            value: value.into(),
            baseline: "—".into(),
            ratio: "—".into(),
            goal: "—".into(),
            met: None,
        }
    }

    pub fn baseline(mut self, baseline: impl Into<String>, ratio: Option<f64>) -> Row {
        self.baseline = baseline.into();
        if let Some(r) = ratio {
            self.ratio = format!("{r:.2}×");
        }
        self
    }

    pub fn goal(mut self, goal: impl Into<String>, met: bool) -> Row {
        self.goal = goal.into();
        self.met = Some(met);
        self
    }
}

/// A Markdown table (readable in a terminal, pasteable into BENCHMARKS.md).
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| metric | value | baseline | ratio | goal | met? |\n|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "—",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            r.metric, r.value, r.baseline, r.ratio, r.goal, met
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_marks_missed_goals() {
        let rows = vec![
            Row::new("a", "1")
                .baseline("2", Some(0.5))
                .goal("< 3", true),
            Row::new("b", "9").goal("< 3", false),
            Row::new("c", "x"),
        ];
        let t = table(&rows);
        assert!(t.contains("| a | 1 | 2 | 0.50× | < 3 | yes |"), "{t}");
        assert!(t.contains("| b | 9 | — | — | < 3 | NO |"), "{t}");
        assert!(t.contains("| c | x | — | — | — | — |"), "{t}");
    }
}
