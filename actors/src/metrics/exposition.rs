//! The two text expositions `/metrics` serves, and the choice between them.
//!
//! prometheus-client writes only OpenMetrics 1.0 (counter families named
//! without `_total`, their samples with it, `# UNIT`, `# EOF`). Prometheus's
//! classic text format 0.0.4 names each family as its samples are named and
//! knows no `info` or `unknown` type, no `# UNIT` and no `# EOF`, and
//! prometheus-client offers no encoder for it: [`to_classic`] rewrites the
//! OpenMetrics text line by line. Exemplars and `_created` samples, which
//! this node does not emit, are not handled.

/// The content type of the OpenMetrics exposition.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The content type of the classic Prometheus text exposition.
pub const CLASSIC_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Does this `Accept` header value ask for OpenMetrics? (Prometheus sends
/// `application/openmetrics-text;version=1.0.0,...;q=0.5,text/plain;...`;
/// a client that lists it with `q=0` refuses it.)
pub fn wants_openmetrics(accept: &str) -> bool {
    accept.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        media.eq_ignore_ascii_case("application/openmetrics-text")
            && !parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            })
    })
}

/// The family name and metric type of a `# TYPE name type` line.
fn type_line(line: &str) -> Option<(&str, &str)> {
    let mut parts = line.strip_prefix("# TYPE ")?.splitn(2, ' ');
    Some((parts.next()?, parts.next()?.trim()))
}

/// Rewrites OpenMetrics text from prometheus-client as the classic format.
pub fn to_classic(openmetrics: &str) -> String {
    // The type of each family, to rename its HELP line (which comes first).
    let types: std::collections::HashMap<&str, &str> =
        openmetrics.lines().filter_map(type_line).collect();
    let classic_name = |family: &str| -> String {
        match types.get(family).copied() {
            Some("counter") => format!("{family}_total"),
            Some("info") => format!("{family}_info"),
            _ => family.to_string(),
        }
    };
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some((family, kind)) = type_line(line) {
            let kind = match kind {
                "counter" | "gauge" | "histogram" | "summary" => kind,
                "info" | "stateset" => "gauge",
                _ => "untyped",
            };
            out.push_str(&format!("# TYPE {} {kind}\n", classic_name(family)));
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            let (family, help) = rest.split_once(' ').unwrap_or((rest, ""));
            out.push_str(&format!("# HELP {} {help}\n", classic_name(family)));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_infos_are_named_as_their_samples() {
        let om = "# HELP x_events Events seen.\n\
                  # TYPE x_events counter\n\
                  x_events_total{kind=\"a\"} 3\n\
                  # HELP x_build Build.\n\
                  # TYPE x_build info\n\
                  x_build_info{version=\"1\"} 1\n\
                  # HELP x_up Up.\n\
                  # TYPE x_up gauge\n\
                  # UNIT x_up seconds\n\
                  x_up 1\n\
                  # HELP x_thing Thing.\n\
                  # TYPE x_thing unknown\n\
                  x_thing 2\n\
                  # EOF\n";
        assert_eq!(
            to_classic(om),
            "# HELP x_events_total Events seen.\n\
             # TYPE x_events_total counter\n\
             x_events_total{kind=\"a\"} 3\n\
             # HELP x_build_info Build.\n\
             # TYPE x_build_info gauge\n\
             x_build_info{version=\"1\"} 1\n\
             # HELP x_up Up.\n\
             # TYPE x_up gauge\n\
             x_up 1\n\
             # HELP x_thing Thing.\n\
             # TYPE x_thing untyped\n\
             x_thing 2\n"
        );
    }

    #[test]
    fn openmetrics_is_chosen_only_when_asked_for() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert!(wants_openmetrics(prometheus));
        assert!(wants_openmetrics("Application/OpenMetrics-Text"));
        assert!(!wants_openmetrics("text/plain"));
        assert!(!wants_openmetrics("*/*"));
        assert!(!wants_openmetrics(""));
        assert!(!wants_openmetrics(
            "application/openmetrics-text; q=0, text/plain"
        ));
    }
}
