//! Charts and reports: the figures MCOS produces, drawn as SVG with `plotters` and put
//! together as one self-contained HTML page.
//!
//! - [`chart`]: line charts (miss-ratio curves, values over a trace, optional log x axis and
//!   event markers) and grouped bar charts (per-policy figures beside a reference line).
//! - [`html`]: a page of sections (text, charts inlined as SVG, tables), with its styles
//!   inline: it needs no network, no script and no other file to be read.
//!
//! This crate knows nothing of traces or policies: callers hand it numbers and names.

#![warn(missing_docs)]

pub mod chart;
pub mod html;

pub use chart::{BarChart, ChartError, LineChart, Marker, Series, bar_chart, line_chart};
pub use html::{Page, Section, Table, escape};
