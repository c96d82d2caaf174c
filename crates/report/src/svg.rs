//! Hand-written SVG: escaping, colour scales, linear scales with "nice" ticks, and a small
//! string builder.

use std::fmt::Write;

/// Escapes text for HTML and SVG (element content and quoted attributes).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
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

/// Nine samples of matplotlib's viridis at t = 0, 1/8, …, 1.
const VIRIDIS: [(u8, u8, u8); 9] = [
    (0x44, 0x01, 0x54),
    (0x47, 0x2d, 0x7b),
    (0x3b, 0x52, 0x8b),
    (0x2c, 0x72, 0x8e),
    (0x21, 0x91, 0x8c),
    (0x28, 0xae, 0x80),
    (0x5e, 0xc9, 0x62),
    (0xad, 0xdc, 0x30),
    (0xfd, 0xe7, 0x25),
];

/// The viridis colour at `t` in [0, 1] (clamped; NaN gives the low end), by linear
/// interpolation between nine samples of the original map.
pub fn viridis(t: f64) -> (u8, u8, u8) {
    let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
    let x = t * (VIRIDIS.len() - 1) as f64;
    let i = (x.floor() as usize).min(VIRIDIS.len() - 2);
    let f = x - i as f64;
    let (a, b) = (VIRIDIS[i], VIRIDIS[i + 1]);
    let mix = |p: u8, q: u8| (p as f64 + (q as f64 - p as f64) * f).round() as u8;
    (mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// `#rrggbb`.
pub fn hex((r, g, b): (u8, u8, u8)) -> String {
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// Black or white, whichever reads better on `bg`.
pub fn text_on((r, g, b): (u8, u8, u8)) -> &'static str {
    let lum = 0.2126 * r as f64 + 0.7152 * g as f64 + 0.0722 * b as f64;
    if lum > 140.0 { "#111" } else { "#fff" }
}

/// Categorical colours (Tableau 10).
pub const PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];

/// The `k`-th categorical colour (cycling).
pub fn colour(k: usize) -> &'static str {
    PALETTE[k % PALETTE.len()]
}

/// A linear map from a data domain to a pixel range.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    /// Domain start.
    pub d0: f64,
    /// Domain end.
    pub d1: f64,
    /// Pixel at `d0`.
    pub r0: f64,
    /// Pixel at `d1`.
    pub r1: f64,
}

impl Scale {
    /// Maps `d0..d1` onto `r0..r1` (a degenerate domain is widened).
    pub fn new(d0: f64, d1: f64, r0: f64, r1: f64) -> Self {
        let (d0, d1) = if (d1 - d0).abs() < 1e-12 {
            (d0 - 0.5, d1 + 0.5)
        } else {
            (d0, d1)
        };
        Self { d0, d1, r0, r1 }
    }

    /// The pixel of `v`.
    pub fn at(&self, v: f64) -> f64 {
        self.r0 + (v - self.d0) / (self.d1 - self.d0) * (self.r1 - self.r0)
    }
}

/// A "nice" step (1, 2 or 5 × 10^k) giving about `target` intervals over `lo..hi`.
pub fn nice_step(lo: f64, hi: f64, target: usize) -> f64 {
    let span = (hi - lo).abs().max(1e-12);
    let raw = span / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let m = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    m * mag
}

/// Widens `lo..hi` to multiples of a nice step; returns the new domain and its ticks.
pub fn nice_domain(lo: f64, hi: f64, target: usize) -> (f64, f64, Vec<f64>) {
    let (lo, hi) = if (hi - lo).abs() < 1e-12 {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo.min(hi), lo.max(hi))
    };
    let step = nice_step(lo, hi, target);
    let a = (lo / step + 1e-9).floor() * step;
    let b = (hi / step - 1e-9).ceil() * step;
    let n = ((b - a) / step).round() as usize;
    let ticks = (0..=n).map(|k| a + k as f64 * step).collect();
    (a, b, ticks)
}

/// A tick label with as many decimals as the step needs; thousands as `k`.
pub fn tick_label(v: f64, step: f64) -> String {
    let v = if v.abs() < step * 1e-6 { 0.0 } else { v };
    if step >= 1000.0 && v != 0.0 && (v / 1000.0).fract().abs() < 1e-9 {
        return format!("{}k", (v / 1000.0).round() as i64);
    }
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10()).ceil().max(0.0) as usize
    };
    format!("{v:.decimals$}")
}

/// Width in pixels of `s` at `size` px: an average glyph width generous enough for lower-case
/// sans-serif names (0.58 em clipped `commonsenseqa` in Chromium's default font).
pub fn text_width(s: &str, size: f64) -> f64 {
    s.chars().count() as f64 * size * 0.64
}

/// Shortens `s` to at most `max` characters with an ellipsis in the middle, so that names
/// sharing a prefix (`task-name-1`, `task-name-2`) stay distinguishable.
pub fn clip(s: &str, max: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= max {
        return s.to_string();
    }
    let keep = max.saturating_sub(1);
    let head = keep.div_ceil(2);
    let tail = keep - head;
    let mut t: String = chars[..head].iter().collect();
    t.push('…');
    t.extend(&chars[chars.len() - tail..]);
    t
}

/// An SVG document being written.
pub struct Svg {
    out: String,
}

/// Formats a coordinate.
fn c(v: f64) -> String {
    let v = if v.is_finite() { v } else { 0.0 };
    let s = format!("{v:.1}");
    s.strip_suffix(".0").map_or(s.clone(), str::to_string)
}

impl Svg {
    /// A `w × h` SVG that scales down with the page; `label` is its accessible name.
    pub fn new(w: f64, h: f64, label: &str) -> Self {
        let mut out = String::new();
        let _ = write!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{l}" class="chart">"#,
            w = c(w),
            h = c(h),
            l = escape(label)
        );
        let _ = write!(out, "<title>{}</title>", escape(label));
        Self { out }
    }

    /// A rectangle; `extra` is raw attributes.
    pub fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: &str, extra: &str) {
        let _ = write!(
            self.out,
            r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{fill}" {extra}/>"#,
            c(x),
            c(y),
            c(w.max(0.0)),
            c(h.max(0.0))
        );
    }

    /// A line segment.
    pub fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, stroke: &str, extra: &str) {
        let _ = write!(
            self.out,
            r#"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{stroke}" {extra}/>"#,
            c(x1),
            c(y1),
            c(x2),
            c(y2)
        );
    }

    /// A polyline through `pts`.
    pub fn polyline(&mut self, pts: &[(f64, f64)], stroke: &str, extra: &str) {
        if pts.is_empty() {
            return;
        }
        let p = pts
            .iter()
            .map(|&(x, y)| format!("{},{}", c(x), c(y)))
            .collect::<Vec<_>>()
            .join(" ");
        let _ = write!(
            self.out,
            r#"<polyline points="{p}" fill="none" stroke="{stroke}" {extra}/>"#
        );
    }

    /// A circle.
    pub fn circle(&mut self, x: f64, y: f64, r: f64, fill: &str, extra: &str) {
        let _ = write!(
            self.out,
            r#"<circle cx="{}" cy="{}" r="{}" fill="{fill}" {extra}/>"#,
            c(x),
            c(y),
            c(r)
        );
    }

    /// Text (escaped); `anchor` is `start`, `middle` or `end`; `extra` is raw attributes.
    pub fn text(&mut self, x: f64, y: f64, s: &str, anchor: &str, size: f64, extra: &str) {
        let _ = write!(
            self.out,
            r#"<text x="{}" y="{}" text-anchor="{anchor}" font-size="{}" {extra}>{}</text>"#,
            c(x),
            c(y),
            c(size),
            escape(s)
        );
    }

    /// Text rotated by `deg` degrees around its anchor point.
    pub fn text_rotated(&mut self, x: f64, y: f64, s: &str, anchor: &str, size: f64, deg: f64) {
        let extra = format!(r#"transform="rotate({} {} {})""#, c(deg), c(x), c(y));
        self.text(x, y, s, anchor, size, &extra);
    }

    /// The markup so far, to append raw (already escaped) elements.
    pub fn buffer(&mut self) -> &mut String {
        &mut self.out
    }

    /// Closes the document.
    pub fn finish(mut self) -> String {
        self.out.push_str("</svg>");
        self.out
    }
}

/// A plot area inside an SVG: pixel box plus the two scales.
pub struct Frame {
    /// Left edge of the plot area.
    pub left: f64,
    /// Top edge.
    pub top: f64,
    /// Right edge.
    pub right: f64,
    /// Bottom edge.
    pub bottom: f64,
    /// x scale.
    pub x: Scale,
    /// y scale.
    pub y: Scale,
}

impl Frame {
    /// Draws the grid lines, axes, tick labels and axis titles. `xticks`/`yticks` are
    /// (value, label) pairs.
    pub fn axes(
        &self,
        svg: &mut Svg,
        xticks: &[(f64, String)],
        yticks: &[(f64, String)],
        xtitle: &str,
        ytitle: &str,
    ) {
        for (v, label) in yticks {
            let y = self.y.at(*v);
            svg.line(self.left, y, self.right, y, "#e4e4e4", "");
            svg.text(
                self.left - 6.0,
                y + 4.0,
                label,
                "end",
                11.0,
                r##"fill="#444""##,
            );
        }
        for (v, label) in xticks {
            let x = self.x.at(*v);
            svg.line(x, self.bottom, x, self.bottom + 4.0, "#666", "");
            svg.text(
                x,
                self.bottom + 16.0,
                label,
                "middle",
                11.0,
                r##"fill="#444""##,
            );
        }
        svg.line(self.left, self.bottom, self.right, self.bottom, "#666", "");
        svg.line(self.left, self.top, self.left, self.bottom, "#666", "");
        if !xtitle.is_empty() {
            svg.text(
                (self.left + self.right) / 2.0,
                self.bottom + 32.0,
                xtitle,
                "middle",
                12.0,
                r##"fill="#222""##,
            );
        }
        if !ytitle.is_empty() {
            let (x, y) = (14.0, (self.top + self.bottom) / 2.0);
            let extra = format!(r##"fill="#222" transform="rotate(-90 {} {})""##, c(x), c(y));
            svg.text(x, y, ytitle, "middle", 12.0, &extra);
        }
    }
}

/// Nice numeric ticks for `lo..hi` as (value, label) pairs, with the widened domain.
pub fn numeric_ticks(lo: f64, hi: f64, target: usize) -> (f64, f64, Vec<(f64, String)>) {
    let (a, b, ticks) = nice_domain(lo, hi, target);
    let step = if ticks.len() > 1 {
        ticks[1] - ticks[0]
    } else {
        1.0
    };
    let labelled = ticks
        .into_iter()
        .map(|v| (v, tick_label(v, step)))
        .collect();
    (a, b, labelled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heatmap_colour_endpoints_are_viridis_ends() {
        assert_eq!(hex(viridis(0.0)), "#440154");
        assert_eq!(hex(viridis(1.0)), "#fde725");
        // Clamped outside [0, 1], and the midpoint is the middle sample (teal).
        assert_eq!(viridis(-3.0), viridis(0.0));
        assert_eq!(viridis(7.0), viridis(1.0));
        assert_eq!(hex(viridis(0.5)), "#21918c");
        assert_eq!(text_on(viridis(0.0)), "#fff");
        assert_eq!(text_on(viridis(1.0)), "#111");
    }

    #[test]
    fn viridis_interpolates_between_samples() {
        // Halfway between samples 0 (0x44,0x01,0x54) and 1 (0x47,0x2d,0x7b).
        let (r, g, b) = viridis(1.0 / 16.0);
        assert_eq!((r, g, b), (0x46, 0x17, 0x68));
    }

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<b>"x" & 'y'</b>"#),
            "&lt;b&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/b&gt;"
        );
        assert_eq!(escape("plain-name_1"), "plain-name_1");
    }

    #[test]
    fn nice_ticks_cover_the_range_with_round_steps() {
        let (a, b, t) = nice_domain(0.0, 0.93, 5);
        assert!((a - 0.0).abs() < 1e-12 && (b - 1.0).abs() < 1e-9);
        assert_eq!(t.len(), 6);
        let (_, _, labelled) = numeric_ticks(0.0, 1234.0, 4);
        assert_eq!(
            labelled.iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>(),
            ["0", "500", "1000", "1500"]
        );
        assert_eq!(tick_label(2000.0, 1000.0), "2k");
        assert_eq!(tick_label(0.0, 5000.0), "0");
    }

    #[test]
    fn clipping_keeps_both_ends() {
        assert_eq!(clip("short", 8), "short");
        assert_eq!(clip("very-long-name-number-7", 11), "very-…ber-7");
        assert_eq!(clip("very-long-name-number-7", 11).chars().count(), 11);
    }

    #[test]
    fn svg_text_is_escaped() {
        let mut s = Svg::new(10.0, 10.0, "a<b");
        s.text(1.0, 2.0, "x & <y>", "start", 10.0, "");
        let out = s.finish();
        assert!(out.contains("x &amp; &lt;y&gt;"));
        assert!(out.contains(r#"aria-label="a&lt;b""#));
        assert!(!out.contains("<y>"));
    }
}
