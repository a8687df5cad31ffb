//! One self-contained HTML page: sections of text, inline SVG charts and tables, with the
//! styles in the page. No script, no external file, no network: it renders the same from a
//! mail attachment, a file server or a machine with no network.

use std::fmt::Write;

/// A table: a header row and rows of cells (plain text, escaped when rendered).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    /// Column names.
    pub header: Vec<String>,
    /// Rows of cells.
    pub rows: Vec<Vec<String>>,
}

/// One section of the page.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Section {
    /// Heading (escaped).
    pub heading: String,
    /// Paragraphs of plain text (escaped), above the charts.
    pub paragraphs: Vec<String>,
    /// SVG documents, inlined in order.
    pub charts: Vec<String>,
    /// Tables, below the charts.
    pub tables: Vec<Table>,
}

/// The page.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Page {
    /// Title (escaped): the tab's title and the first heading.
    pub title: String,
    /// Lines under the title (escaped): what was run, on what.
    pub subtitle: Vec<String>,
    /// The sections in order.
    pub sections: Vec<Section>,
}

const STYLE: &str = "body{font-family:sans-serif;margin:24px auto;max-width:960px;color:#222}\
h1{font-size:26px;margin-bottom:4px}h2{font-size:20px;margin-top:36px;border-bottom:1px solid #ddd}\
.sub{color:#555;margin:2px 0}figure{margin:12px 0}svg{max-width:100%;height:auto}\
table{border-collapse:collapse;margin:10px 0;font-size:13px}\
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f2f2f2}\
td:first-child,th:first-child{text-align:left}";

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Strips an SVG document's XML declaration, if any, so it can sit inside HTML.
fn inline_svg(svg: &str) -> &str {
    let s = svg.trim_start();
    match (s.starts_with("<?xml"), s.find("?>")) {
        (true, Some(end)) => s[end + 2..].trim_start(),
        _ => s,
    }
}

impl Page {
    /// The whole document.
    pub fn render(&self) -> String {
        let mut h = String::new();
        let _ = write!(
            h,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{}</title><style>{STYLE}</style></head>\n<body>\n<h1>{}</h1>\n",
            escape(&self.title),
            escape(&self.title)
        );
        for line in &self.subtitle {
            let _ = writeln!(h, "<p class=\"sub\">{}</p>", escape(line));
        }
        for (i, s) in self.sections.iter().enumerate() {
            let _ = writeln!(h, "<section id=\"s{i}\">\n<h2>{}</h2>", escape(&s.heading));
            for p in &s.paragraphs {
                let _ = writeln!(h, "<p>{}</p>", escape(p));
            }
            for svg in &s.charts {
                let _ = writeln!(h, "<figure>{}</figure>", inline_svg(svg));
            }
            for t in &s.tables {
                h.push_str("<table><thead><tr>");
                for c in &t.header {
                    let _ = write!(h, "<th>{}</th>", escape(c));
                }
                h.push_str("</tr></thead><tbody>\n");
                for r in &t.rows {
                    h.push_str("<tr>");
                    for c in r {
                        let _ = write!(h, "<td>{}</td>", escape(c));
                    }
                    h.push_str("</tr>\n");
                }
                h.push_str("</tbody></table>\n");
            }
            h.push_str("</section>\n");
        }
        h.push_str("</body></html>\n");
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_is_self_contained_and_escaped() {
        let page = Page {
            title: "a <b> & c".into(),
            subtitle: vec!["trace \"x\"".into()],
            sections: vec![Section {
                heading: "curves".into(),
                paragraphs: vec!["1 < 2".into()],
                charts: vec!["<?xml version=\"1.0\"?>\n<svg width=\"1\"></svg>".into()],
                tables: vec![Table {
                    header: vec!["policy".into()],
                    rows: vec![vec!["<lru>".into()]],
                }],
            }],
        };
        let h = page.render();
        assert!(h.starts_with("<!DOCTYPE html>"));
        assert!(h.contains("<h1>a &lt;b&gt; &amp; c</h1>"));
        assert!(h.contains("trace &quot;x&quot;") && h.contains("1 &lt; 2"));
        assert!(
            h.contains("<figure><svg width=\"1\"></svg></figure>"),
            "{h}"
        );
        assert!(!h.contains("<?xml"));
        assert!(h.contains("<td>&lt;lru&gt;</td>"));
        for forbidden in ["<script", "http://", "https://", "<link", "@import"] {
            assert!(!h.contains(forbidden), "{forbidden}");
        }
    }
}
