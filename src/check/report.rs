//! The report `check` prints: one finding per check, rendered as ✓/✗ lines for a person or as
//! a JSON array for a script.

use serde::Serialize;

use crate::cli::ReportFormat;

/// One check's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub ok: bool,
    /// What was checked.
    pub check: String,
    /// What was found.
    pub detail: String,
    /// What to do, for a failed check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Finding {
    pub(super) fn pass(check: &str, detail: impl Into<String>) -> Finding {
        Finding {
            ok: true,
            check: check.to_owned(),
            detail: detail.into(),
            fix: None,
        }
    }

    pub(super) fn fail(check: &str, detail: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            ok: false,
            check: check.to_owned(),
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// The report: one line per finding, or a JSON array.
pub fn render(findings: &[Finding], format: ReportFormat) -> String {
    match format {
        ReportFormat::Json => {
            let mut text = serde_json::to_string_pretty(findings).expect("findings serialize");
            text.push('\n');
            text
        }
        ReportFormat::Text => findings
            .iter()
            .map(|f| match &f.fix {
                None => format!("✓ {}: {}\n", f.check, f.detail),
                Some(fix) => format!("✗ {}: {} — {fix}\n", f.check, f.detail),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_marks_each_line_and_says_the_fix_of_a_failure() {
        let findings = [
            Finding::pass("Nomad answers", "http://127.0.0.1:4646"),
            Finding::fail("node:read", "403", "grant node read"),
        ];
        assert_eq!(
            render(&findings, ReportFormat::Text),
            "✓ Nomad answers: http://127.0.0.1:4646\n✗ node:read: 403 — grant node read\n"
        );
        let json: serde_json::Value =
            serde_json::from_str(&render(&findings, ReportFormat::Json)).expect("json");
        assert_eq!(json[1]["ok"], false);
        assert_eq!(json[1]["fix"], "grant node read");
        assert!(json[0].get("fix").is_none());
    }
}
