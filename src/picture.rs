//! PNG pictures of generated samples and of sweeps, returned as bytes (the library never writes
//! files).
//!
//! A small rasteriser draws them: anti-aliased lines and filled circles (coverage from the
//! distance of each pixel centre to the shape, blended over the pixel), pixel rectangles, and a
//! built-in 5 × 9 bitmap font (digits, letters, common symbols; anything else draws as '?').
//! Colours are 8-bit sRGB values blended linearly in those values, and nothing depends on the
//! machine, so the same call gives the same bytes.
//!
//! The pictures:
//! - [`graphs_png`]: generated graphs above, training graphs below, one per cell, laid out by
//!   [`layout`] (stress majorisation from a classical-MDS start, deterministic);
//! - [`scatter_png`]: 2-D samples over training points, with legend and ticks;
//! - [`lines_png`]: metric curves (e.g. against network calls), linear or log axes, markers,
//!   legend and ticks.

use crate::graph::Graph;
use std::collections::VecDeque;

/// An 8-bit sRGB colour.
pub type Rgb = [u8; 3];

pub const WHITE: Rgb = [255, 255, 255];
pub const BLACK: Rgb = [0, 0, 0];
/// Axis and text grey.
pub const DARK: Rgb = [60, 60, 60];
/// Grid-line grey.
pub const LIGHT: Rgb = [225, 225, 225];
/// Series colours, in order (matplotlib's `tab10`).
pub const PALETTE: [Rgb; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];
/// The colour of generated samples (orange) and of training data (blue).
pub const GENERATED: Rgb = PALETTE[1];
pub const TRAINING: Rgb = PALETTE[0];

/// The side of one graph's cell in [`graphs_png`], in pixels.
pub const GRAPH_CELL: u32 = 160;
/// The size of [`scatter_png`]'s picture.
pub const SCATTER_SIZE: (u32, u32) = (640, 640);
/// The size of [`lines_png`]'s picture.
pub const LINES_SIZE: (u32, u32) = (800, 560);

/// The outer margin of [`graphs_png`].
const GRAPH_MARGIN: u32 = 10;
/// The height of the band that names a group of graphs.
const GRAPH_BAND: u32 = 30;

/// Horizontal placement of text relative to its anchor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Centre,
    Right,
}

/// An RGB picture being drawn.
#[derive(Debug, Clone)]
pub struct Canvas {
    width: u32,
    height: u32,
    pixels: Vec<[f32; 3]>,
    /// Drawing is limited to x in [clip.0, clip.2) and y in [clip.1, clip.3).
    clip: (i64, i64, i64, i64),
}

impl Canvas {
    /// A canvas filled with `background`; both sides at least 1.
    pub fn new(width: u32, height: u32, background: Rgb) -> Canvas {
        let (width, height) = (width.max(1), height.max(1));
        Canvas {
            width,
            height,
            pixels: vec![background.map(f32::from); width as usize * height as usize],
            clip: (0, 0, width as i64, height as i64),
        }
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// The colour of pixel (x, y), rounded to 8 bits.
    pub fn pixel(&self, x: u32, y: u32) -> Rgb {
        let p = self.pixels[(y * self.width + x) as usize];
        p.map(|v| v.round().clamp(0.0, 255.0) as u8)
    }

    /// Limits drawing to the rectangle [x0, x1) × [y0, y1) (within the canvas).
    pub fn set_clip(&mut self, x0: i64, y0: i64, x1: i64, y1: i64) {
        let (w, h) = (self.width as i64, self.height as i64);
        self.clip = (
            x0.clamp(0, w),
            y0.clamp(0, h),
            x1.clamp(0, w),
            y1.clamp(0, h),
        );
    }

    /// Lifts the clip rectangle.
    pub fn clear_clip(&mut self) {
        self.clip = (0, 0, self.width as i64, self.height as i64);
    }

    /// Blends `colour` over pixel (x, y) with weight `alpha` in [0, 1].
    fn blend(&mut self, x: i64, y: i64, colour: Rgb, alpha: f64) {
        let (x0, y0, x1, y1) = self.clip;
        if alpha <= 0.0 || x < x0 || y < y0 || x >= x1 || y >= y1 {
            return;
        }
        let a = alpha.min(1.0) as f32;
        let p = &mut self.pixels[(y * self.width as i64 + x) as usize];
        for c in 0..3 {
            p[c] += (colour[c] as f32 - p[c]) * a;
        }
    }

    /// Fills the pixels [x, x + w) × [y, y + h).
    pub fn rect(&mut self, x: i64, y: i64, w: i64, h: i64, colour: Rgb) {
        for py in y..y + h {
            for px in x..x + w {
                self.blend(px, py, colour, 1.0);
            }
        }
    }

    /// The outline, one pixel wide, of [x, x + w) × [y, y + h).
    pub fn frame(&mut self, x: i64, y: i64, w: i64, h: i64, colour: Rgb) {
        self.rect(x, y, w, 1, colour);
        self.rect(x, y + h - 1, w, 1, colour);
        self.rect(x, y, 1, h, colour);
        self.rect(x + w - 1, y, 1, h, colour);
    }

    /// An anti-aliased segment of the given width (pixel coordinates, pixel centres at +0.5).
    pub fn line(&mut self, from: [f64; 2], to: [f64; 2], width: f64, colour: Rgb) {
        if !(from.iter().chain(&to).all(|v| v.is_finite())) {
            return;
        }
        let half = width / 2.0;
        let reach = half + 1.0;
        let (x0, x1) = (from[0].min(to[0]) - reach, from[0].max(to[0]) + reach);
        let (y0, y1) = (from[1].min(to[1]) - reach, from[1].max(to[1]) + reach);
        let (dx, dy) = (to[0] - from[0], to[1] - from[1]);
        let length2 = dx * dx + dy * dy;
        for py in self.span(y0, y1, 1) {
            for px in self.span(x0, x1, 0) {
                let (cx, cy) = (px as f64 + 0.5, py as f64 + 0.5);
                let t = if length2 > 0.0 {
                    (((cx - from[0]) * dx + (cy - from[1]) * dy) / length2).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let d = ((cx - from[0] - t * dx).powi(2) + (cy - from[1] - t * dy).powi(2)).sqrt();
                self.blend(px, py, colour, (half + 0.5 - d).clamp(0.0, 1.0));
            }
        }
    }

    /// An anti-aliased filled circle, blended with `opacity`.
    pub fn circle(&mut self, centre: [f64; 2], radius: f64, colour: Rgb, opacity: f64) {
        if !(centre[0].is_finite() && centre[1].is_finite()) {
            return;
        }
        let reach = radius + 1.0;
        for py in self.span(centre[1] - reach, centre[1] + reach, 1) {
            for px in self.span(centre[0] - reach, centre[0] + reach, 0) {
                let d = ((px as f64 + 0.5 - centre[0]).powi(2)
                    + (py as f64 + 0.5 - centre[1]).powi(2))
                .sqrt();
                let coverage = (radius + 0.5 - d).clamp(0.0, 1.0);
                self.blend(px, py, colour, coverage * opacity);
            }
        }
    }

    /// The pixel indices from ⌊lo⌋ to ⌈hi⌉ along an axis (0: x, 1: y), limited to the clip.
    fn span(&self, lo: f64, hi: f64, axis: usize) -> std::ops::Range<i64> {
        let (min, max) = if axis == 0 {
            (self.clip.0, self.clip.2)
        } else {
            (self.clip.1, self.clip.3)
        };
        let lo = (lo.floor().max(min as f64)) as i64;
        let hi = (hi.ceil().min(max as f64)) as i64;
        lo..hi.max(lo)
    }

    /// Text with its top at `y`, placed against `x` by `align`; each font pixel is a
    /// `scale` × `scale` square.
    pub fn text(&mut self, x: f64, y: f64, text: &str, scale: u32, colour: Rgb, align: Align) {
        let s = scale.max(1) as i64;
        let width = text_width(text, scale) as f64;
        let left = match align {
            Align::Left => x,
            Align::Centre => x - width / 2.0,
            Align::Right => x - width,
        };
        let (left, top) = (left.round() as i64, y.round() as i64);
        for (k, ch) in text.chars().enumerate() {
            let rows = glyph(ch);
            for (r, bits) in rows.iter().enumerate() {
                for c in 0..GLYPH_W {
                    if bits & (1 << (GLYPH_W - 1 - c)) != 0 {
                        let px = left + (k as i64 * ADVANCE + c as i64) * s;
                        self.rect(px, top + r as i64 * s, s, s, colour);
                    }
                }
            }
        }
    }

    /// Text turned a quarter counter-clockwise (read from bottom to top), centred on (x, y).
    pub fn text_up(&mut self, x: f64, y: f64, text: &str, scale: u32, colour: Rgb) {
        let s = scale.max(1) as i64;
        let length = text_width(text, scale) as i64;
        let left = x.round() as i64 - GLYPH_H as i64 * s / 2;
        let bottom = y.round() as i64 + length / 2;
        for (k, ch) in text.chars().enumerate() {
            for (r, bits) in glyph(ch).iter().enumerate() {
                for c in 0..GLYPH_W {
                    if bits & (1 << (GLYPH_W - 1 - c)) != 0 {
                        // Glyph column c runs upwards; glyph row r runs rightwards.
                        let along = (k as i64 * ADVANCE + c as i64) * s;
                        self.rect(left + r as i64 * s, bottom - along - s, s, s, colour);
                    }
                }
            }
        }
    }

    /// The picture as PNG bytes (8-bit RGB).
    pub fn png(&self) -> Vec<u8> {
        let data: Vec<u8> = (0..self.height)
            .flat_map(|y| (0..self.width).map(move |x| (x, y)))
            .flat_map(|(x, y)| self.pixel(x, y))
            .collect();
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, self.width, self.height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        // Writing to a Vec cannot fail, and the data has exactly width · height · 3 bytes.
        let mut writer = encoder.write_header().expect("PNG header");
        writer.write_image_data(&data).expect("PNG data");
        writer.finish().expect("PNG end");
        out
    }
}

// ---------------------------------------------------------------------------------------------
// The font.
// ---------------------------------------------------------------------------------------------

const GLYPH_W: usize = 5;
/// Rows 0 to 6 stand on the baseline; rows 7 and 8 are descenders.
const GLYPH_H: usize = 9;
/// Glyph width plus one column of spacing.
const ADVANCE: i64 = 6;

/// The width in pixels of `text` at `scale`.
pub fn text_width(text: &str, scale: u32) -> u32 {
    let n = text.chars().count() as u32;
    (n * ADVANCE as u32).saturating_sub(1) * scale.max(1)
}

/// The height in pixels of a line of text at `scale`, descenders included.
pub fn text_height(scale: u32) -> u32 {
    GLYPH_H as u32 * scale.max(1)
}

/// Glyphs as rows of '#' (ink) and '.', rows separated by '|'; missing rows are blank.
const FONT: &[(char, &str)] = &[
    (' ', ""),
    ('0', ".###.|#...#|#..##|#.#.#|##..#|#...#|.###."),
    ('1', "..#..|.##..|..#..|..#..|..#..|..#..|.###."),
    ('2', ".###.|#...#|....#|...#.|..#..|.#...|#####"),
    ('3', "#####|...#.|..#..|...#.|....#|#...#|.###."),
    ('4', "...#.|..##.|.#.#.|#..#.|#####|...#.|...#."),
    ('5', "#####|#....|####.|....#|....#|#...#|.###."),
    ('6', "..##.|.#...|#....|####.|#...#|#...#|.###."),
    ('7', "#####|....#|...#.|..#..|.#...|.#...|.#..."),
    ('8', ".###.|#...#|#...#|.###.|#...#|#...#|.###."),
    ('9', ".###.|#...#|#...#|.####|....#|...#.|.##.."),
    ('A', ".###.|#...#|#...#|#####|#...#|#...#|#...#"),
    ('B', "####.|#...#|#...#|####.|#...#|#...#|####."),
    ('C', ".###.|#...#|#....|#....|#....|#...#|.###."),
    ('D', "###..|#..#.|#...#|#...#|#...#|#..#.|###.."),
    ('E', "#####|#....|#....|####.|#....|#....|#####"),
    ('F', "#####|#....|#....|####.|#....|#....|#...."),
    ('G', ".###.|#...#|#....|#.###|#...#|#...#|.####"),
    ('H', "#...#|#...#|#...#|#####|#...#|#...#|#...#"),
    ('I', ".###.|..#..|..#..|..#..|..#..|..#..|.###."),
    ('J', "..###|...#.|...#.|...#.|...#.|#..#.|.##.."),
    ('K', "#...#|#..#.|#.#..|##...|#.#..|#..#.|#...#"),
    ('L', "#....|#....|#....|#....|#....|#....|#####"),
    ('M', "#...#|##.##|#.#.#|#.#.#|#...#|#...#|#...#"),
    ('N', "#...#|#...#|##..#|#.#.#|#..##|#...#|#...#"),
    ('O', ".###.|#...#|#...#|#...#|#...#|#...#|.###."),
    ('P', "####.|#...#|#...#|####.|#....|#....|#...."),
    ('Q', ".###.|#...#|#...#|#...#|#.#.#|#..#.|.##.#"),
    ('R', "####.|#...#|#...#|####.|#.#..|#..#.|#...#"),
    ('S', ".####|#....|#....|.###.|....#|....#|####."),
    ('T', "#####|..#..|..#..|..#..|..#..|..#..|..#.."),
    ('U', "#...#|#...#|#...#|#...#|#...#|#...#|.###."),
    ('V', "#...#|#...#|#...#|#...#|#...#|.#.#.|..#.."),
    ('W', "#...#|#...#|#...#|#.#.#|#.#.#|#.#.#|.#.#."),
    ('X', "#...#|#...#|.#.#.|..#..|.#.#.|#...#|#...#"),
    ('Y', "#...#|#...#|.#.#.|..#..|..#..|..#..|..#.."),
    ('Z', "#####|....#|...#.|..#..|.#...|#....|#####"),
    ('a', ".....|.....|.###.|....#|.####|#...#|.####"),
    ('b', "#....|#....|#.##.|##..#|#...#|#...#|####."),
    ('c', ".....|.....|.###.|#....|#....|#...#|.###."),
    ('d', "....#|....#|.##.#|#..##|#...#|#...#|.####"),
    ('e', ".....|.....|.###.|#...#|#####|#....|.###."),
    ('f', "..##.|.#..#|.#...|###..|.#...|.#...|.#..."),
    ('g', ".....|.....|.####|#...#|#...#|#...#|.####|....#|.###."),
    ('h', "#....|#....|#.##.|##..#|#...#|#...#|#...#"),
    ('i', "..#..|.....|.##..|..#..|..#..|..#..|.###."),
    ('j', "...#.|.....|..##.|...#.|...#.|...#.|...#.|#..#.|.##.."),
    ('k', "#....|#....|#..#.|#.#..|##...|#.#..|#..#."),
    ('l', ".##..|..#..|..#..|..#..|..#..|..#..|.###."),
    ('m', ".....|.....|##.#.|#.#.#|#.#.#|#.#.#|#.#.#"),
    ('n', ".....|.....|#.##.|##..#|#...#|#...#|#...#"),
    ('o', ".....|.....|.###.|#...#|#...#|#...#|.###."),
    ('p', ".....|.....|####.|#...#|#...#|#...#|####.|#....|#...."),
    ('q', ".....|.....|.####|#...#|#...#|#...#|.####|....#|....#"),
    ('r', ".....|.....|#.##.|##..#|#....|#....|#...."),
    ('s', ".....|.....|.###.|#....|.###.|....#|####."),
    ('t', ".#...|.#...|###..|.#...|.#...|.#..#|..##."),
    ('u', ".....|.....|#...#|#...#|#...#|#..##|.##.#"),
    ('v', ".....|.....|#...#|#...#|#...#|.#.#.|..#.."),
    ('w', ".....|.....|#...#|#...#|#.#.#|#.#.#|.#.#."),
    ('x', ".....|.....|#...#|.#.#.|..#..|.#.#.|#...#"),
    ('y', ".....|.....|#...#|#...#|#...#|#...#|.####|....#|.###."),
    ('z', ".....|.....|#####|...#.|..#..|.#...|#####"),
    ('.', ".....|.....|.....|.....|.....|.##..|.##.."),
    (',', ".....|.....|.....|.....|.....|.##..|.##..|..#..|.#..."),
    ('-', ".....|.....|.....|.###.|.....|.....|....."),
    ('+', ".....|..#..|..#..|#####|..#..|..#..|....."),
    ('=', ".....|.....|#####|.....|#####|.....|....."),
    (':', ".....|.##..|.##..|.....|.##..|.##..|....."),
    (';', ".....|.##..|.##..|.....|.##..|.##..|..#..|.#..."),
    ('(', "...#.|..#..|.#...|.#...|.#...|..#..|...#."),
    (')', ".#...|..#..|...#.|...#.|...#.|..#..|.#..."),
    ('[', ".###.|.#...|.#...|.#...|.#...|.#...|.###."),
    (']', ".###.|...#.|...#.|...#.|...#.|...#.|.###."),
    ('/', "....#|....#|...#.|..#..|.#...|#....|#...."),
    ('_', ".....|.....|.....|.....|.....|.....|.....|#####"),
    ('%', "##..#|##..#|...#.|..#..|.#...|#..##|#..##"),
    ('^', "..#..|.#.#.|#...#"),
    ('*', ".....|..#..|#.#.#|.###.|#.#.#|..#..|....."),
    ('<', "...#.|..#..|.#...|#....|.#...|..#..|...#."),
    ('>', ".#...|..#..|...#.|....#|...#.|..#..|.#..."),
    ('#', ".#.#.|.#.#.|#####|.#.#.|#####|.#.#.|.#.#."),
    ('\'', "..#..|..#..|.#..."),
    ('"', ".#.#.|.#.#.|.#.#."),
    ('!', "..#..|..#..|..#..|..#..|..#..|.....|..#.."),
    ('?', ".###.|#...#|....#|...#.|..#..|.....|..#.."),
    ('|', "..#..|..#..|..#..|..#..|..#..|..#..|..#..|..#..|..#.."),
    ('&', ".##..|#..#.|#.#..|.#...|#.#.#|#..#.|.##.#"),
    ('~', ".....|.....|.....|.##.#|#.##.|.....|....."),
];

/// The rows of a glyph as bit masks (bit 4 is the leftmost column); '?' for unknown characters.
fn glyph(ch: char) -> [u8; GLYPH_H] {
    let art = FONT
        .iter()
        .find(|(c, _)| *c == ch)
        .or_else(|| FONT.iter().find(|(c, _)| *c == '?'))
        .map(|(_, art)| *art)
        .unwrap_or("");
    let mut rows = [0u8; GLYPH_H];
    for (r, row) in art.split('|').enumerate().take(GLYPH_H) {
        for (c, cell) in row.chars().enumerate().take(GLYPH_W) {
            if cell == '#' {
                rows[r] |= 1 << (GLYPH_W - 1 - c);
            }
        }
    }
    rows
}

// ---------------------------------------------------------------------------------------------
// Axes.
// ---------------------------------------------------------------------------------------------

/// A data range mapped onto a pixel range, linear or base-10 logarithmic.
#[derive(Debug, Clone, Copy)]
struct Axis {
    /// The range in axis units (log10 of the value on a log axis).
    lo: f64,
    hi: f64,
    log: bool,
    /// The pixel coordinates of `lo` and `hi`.
    from: f64,
    to: f64,
}

impl Axis {
    /// The range of the usable values (finite, and positive on a log axis), padded by 5% on
    /// each side; a single value gets ±0.5 units, no value gets [0, 1] (values 1 to 10 on log).
    fn fit(values: impl Iterator<Item = f64>, log: bool, from: f64, to: f64) -> Axis {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values.filter_map(|v| to_axis(v, log)) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if lo > hi {
            (lo, hi) = (0.0, 1.0);
        } else if lo == hi {
            (lo, hi) = (lo - 0.5, hi + 0.5);
        } else {
            let pad = 0.05 * (hi - lo);
            (lo, hi) = (lo - pad, hi + pad);
        }
        Axis {
            lo,
            hi,
            log,
            from,
            to,
        }
    }

    /// The pixel coordinate of a value, `None` when the axis cannot show it.
    fn map(&self, v: f64) -> Option<f64> {
        let t = to_axis(v, self.log)?;
        Some(self.from + (t - self.lo) / (self.hi - self.lo) * (self.to - self.from))
    }

    /// Tick values with their labels.
    fn ticks(&self) -> Vec<(f64, String)> {
        if self.log {
            let (first, last) = (self.lo.ceil() as i64, self.hi.floor() as i64);
            let mut ticks: Vec<(f64, String)> = Vec::new();
            let decades = last - first + 1;
            for e in (self.lo.floor() as i64)..=last {
                let mantissas: &[f64] = if decades >= 3 {
                    &[1.0]
                } else {
                    &[1.0, 2.0, 5.0]
                };
                for &m in mantissas {
                    let v = m * 10f64.powi(e as i32);
                    let t = v.log10();
                    if t >= self.lo && t <= self.hi {
                        ticks.push((v, log_label(m, e)));
                    }
                }
            }
            return ticks;
        }
        let raw = (self.hi - self.lo) / 5.0;
        let magnitude = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 5.0, 10.0]
            .iter()
            .map(|m| m * magnitude)
            .find(|&s| s >= raw * (1.0 - 1e-9))
            .unwrap_or(10.0 * magnitude);
        let decimals = (-(step.log10() + 1e-9).floor()).max(0.0) as usize;
        let mut ticks = Vec::new();
        let mut k = (self.lo / step).ceil();
        while k * step <= self.hi + step * 1e-9 {
            let v = k * step;
            ticks.push((v, number_label(v, decimals)));
            k += 1.0;
        }
        ticks
    }
}

fn to_axis(v: f64, log: bool) -> Option<f64> {
    match (v.is_finite(), log) {
        (false, _) => None,
        (true, false) => Some(v),
        (true, true) => (v > 0.0).then(|| v.log10()),
    }
}

/// A linear tick label with `decimals` decimals, or in exponent form when very large or small.
fn number_label(v: f64, decimals: usize) -> String {
    if v.abs() < 1e-300 {
        return "0".to_string();
    }
    if decimals > 4 || v.abs() >= 1e6 {
        let text = format!("{v:.1e}");
        return text.replace(".0e", "e");
    }
    let text = format!("{v:.decimals$}");
    if text
        .trim_start_matches('-')
        .chars()
        .all(|c| c == '0' || c == '.')
    {
        return "0".to_string();
    }
    text
}

/// The label of m · 10^e on a log axis.
fn log_label(m: f64, e: i64) -> String {
    if (-3..=4).contains(&e) {
        let decimals = (-e).max(0) as usize;
        format!("{:.decimals$}", m * 10f64.powi(e as i32))
    } else {
        format!("{m}e{e}")
    }
}

/// The plot area of a picture: pixel rectangle [x0, x1) × [y0, y1).
#[derive(Debug, Clone, Copy)]
struct Area {
    x0: f64,
    y0: f64,
    x1: f64,
    y1: f64,
}

/// Grid lines, the frame, ticks and tick labels of a plot area.
fn draw_axes(canvas: &mut Canvas, area: Area, x: &Axis, y: &Axis) {
    let xt = x.ticks();
    let yt = y.ticks();
    for (v, _) in &xt {
        if let Some(px) = x.map(*v) {
            canvas.line([px, area.y0], [px, area.y1], 1.0, LIGHT);
        }
    }
    for (v, _) in &yt {
        if let Some(py) = y.map(*v) {
            canvas.line([area.x0, py], [area.x1, py], 1.0, LIGHT);
        }
    }
    let (w, h) = (area.x1 - area.x0, area.y1 - area.y0);
    canvas.frame(
        area.x0 as i64 - 1,
        area.y0 as i64 - 1,
        w as i64 + 2,
        h as i64 + 2,
        DARK,
    );
    for (v, label) in &xt {
        if let Some(px) = x.map(*v) {
            canvas.line([px, area.y1], [px, area.y1 + 5.0], 1.0, DARK);
            canvas.text(px, area.y1 + 9.0, label, 2, DARK, Align::Centre);
        }
    }
    let half_text = text_height(2) as f64 * 7.0 / 18.0;
    for (v, label) in &yt {
        if let Some(py) = y.map(*v) {
            canvas.line([area.x0 - 5.0, py], [area.x0, py], 1.0, DARK);
            canvas.text(area.x0 - 9.0, py - half_text, label, 2, DARK, Align::Right);
        }
    }
}

/// A legend box in the corner of `area` that covers the fewest of `occupied` (pixel positions
/// of what the plot shows; ties go to top right, top left, bottom right, bottom left): a
/// swatch drawn by `swatch` and a name per entry.
fn draw_legend(
    canvas: &mut Canvas,
    area: Area,
    entries: &[(String, Rgb)],
    occupied: &[[f64; 2]],
    swatch: impl Fn(&mut Canvas, [f64; 2], Rgb),
) {
    if entries.is_empty() {
        return;
    }
    let line = text_height(2) as f64 + 6.0;
    let widest = entries
        .iter()
        .map(|(name, _)| text_width(name, 2))
        .max()
        .unwrap_or(0) as f64;
    let (w, h) = (widest + 50.0, line * entries.len() as f64 + 8.0);
    let (left, right) = (area.x0 + 10.0, area.x1 - w - 10.0);
    let (top, bottom) = (area.y0 + 10.0, area.y1 - h - 10.0);
    let covered = |&(x, y): &(f64, f64)| {
        occupied
            .iter()
            .filter(|p| {
                p[0] >= x - 4.0 && p[0] <= x + w + 4.0 && p[1] >= y - 4.0 && p[1] <= y + h + 4.0
            })
            .count()
    };
    let corners = [(right, top), (left, top), (right, bottom), (left, bottom)];
    let (x, y) = corners
        .iter()
        .copied()
        .min_by_key(|c| covered(c))
        .unwrap_or((right, top));
    canvas.rect(x as i64, y as i64, w as i64, h as i64, WHITE);
    canvas.frame(x as i64, y as i64, w as i64, h as i64, LIGHT);
    for (k, (name, colour)) in entries.iter().enumerate() {
        let top = y + 6.0 + k as f64 * line;
        swatch(canvas, [x + 20.0, top + 7.0], *colour);
        canvas.text(x + 40.0, top, name, 2, DARK, Align::Left);
    }
}

// ---------------------------------------------------------------------------------------------
// The pictures.
// ---------------------------------------------------------------------------------------------

/// Generated graphs in the top rows and training graphs in the bottom rows, `columns` cells
/// per row (at least 1), each group under its name ("generated", "training") and each graph in
/// a [`GRAPH_CELL`]-pixel cell with its node and edge counts.
///
/// The picture is `2 · 10 + columns · 160` pixels wide; each group adds a 30-pixel band and
/// ⌈count / columns⌉ rows of cells (one row, saying "none", for an empty group), and the
/// picture has a 10-pixel margin above and below.
/// Layouts cost O(n²) time and memory per graph, so the picture suits graphs of up to about a
/// thousand nodes.
pub fn graphs_png(generated: &[Graph], training: &[Graph], columns: usize) -> Vec<u8> {
    let columns = columns.max(1);
    let cell = GRAPH_CELL as i64;
    let rows = |n: usize| n.div_ceil(columns).max(1) as i64;
    let width = 2 * GRAPH_MARGIN as i64 + columns as i64 * cell;
    let height = 2 * GRAPH_MARGIN as i64
        + 2 * GRAPH_BAND as i64
        + (rows(generated.len()) + rows(training.len())) * cell;
    let mut canvas = Canvas::new(width as u32, height as u32, WHITE);
    let mut top = GRAPH_MARGIN as i64;
    for (name, graphs, colour) in [
        ("generated", generated, GENERATED),
        ("training", training, TRAINING),
    ] {
        let label = format!("{name} ({})", graphs.len());
        canvas.text(
            GRAPH_MARGIN as f64 + 4.0,
            top as f64 + 8.0,
            &label,
            2,
            DARK,
            Align::Left,
        );
        top += GRAPH_BAND as i64;
        if graphs.is_empty() {
            canvas.text(
                GRAPH_MARGIN as f64 + cell as f64 / 2.0,
                (top + cell / 2) as f64,
                "none",
                2,
                DARK,
                Align::Centre,
            );
        }
        for (k, g) in graphs.iter().enumerate() {
            let x = GRAPH_MARGIN as i64 + (k % columns) as i64 * cell;
            let y = top + (k / columns) as i64 * cell;
            draw_graph(&mut canvas, g, x, y, colour);
        }
        top += rows(graphs.len()) * cell;
    }
    canvas.png()
}

/// One graph in the cell with top-left corner (x, y).
fn draw_graph(canvas: &mut Canvas, g: &Graph, x: i64, y: i64, colour: Rgb) {
    let cell = GRAPH_CELL as i64;
    canvas.frame(x + 2, y + 2, cell - 4, cell - 4, LIGHT);
    let caption = format!("n {} m {}", g.nodes(), g.edge_count());
    canvas.text(
        (x + 6) as f64,
        (y + cell - 15) as f64,
        &caption,
        1,
        DARK,
        Align::Left,
    );
    let n = g.nodes();
    if n == 0 {
        return;
    }
    let radius = (40.0 / (n as f64).sqrt()).clamp(1.5, 5.0);
    let pad = 8.0 + radius;
    let side = cell as f64 - 2.0 * pad - 10.0;
    let at: Vec<[f64; 2]> = layout(g)
        .iter()
        .map(|p| [x as f64 + pad + p[0] * side, y as f64 + pad + p[1] * side])
        .collect();
    canvas.set_clip(x + 3, y + 3, x + cell - 3, y + cell - 3);
    let edge_width = if n > 150 { 0.8 } else { 1.2 };
    for (u, v) in g.edges() {
        canvas.line(at[u], at[v], edge_width, [110, 110, 110]);
    }
    for p in &at {
        canvas.circle(*p, radius, colour, 1.0);
    }
    canvas.clear_clip();
}

/// 2-D samples (generated, orange) over training points (blue) on equal axes, with a legend
/// and tick labels; [`SCATTER_SIZE`] pixels. Points with a non-finite coordinate are left out.
pub fn scatter_png(samples: &[[f32; 2]], training: &[[f32; 2]]) -> Vec<u8> {
    let (width, height) = SCATTER_SIZE;
    let mut canvas = Canvas::new(width, height, WHITE);
    let area = Area {
        x0: 80.0,
        y0: 20.0,
        x1: width as f64 - 20.0,
        y1: height as f64 - 60.0,
    };
    let finite = |p: &&[f32; 2]| p[0].is_finite() && p[1].is_finite();
    let all = || samples.iter().chain(training).filter(finite);
    // One range for both axes, so shapes keep their proportions.
    let values = all().flat_map(|p| [p[0] as f64, p[1] as f64]);
    let range = Axis::fit(values, false, 0.0, 1.0);
    let x = Axis {
        from: area.x0,
        to: area.x1,
        ..range
    };
    let y = Axis {
        from: area.y1,
        to: area.y0,
        ..range
    };
    draw_axes(&mut canvas, area, &x, &y);
    canvas.set_clip(
        area.x0 as i64,
        area.y0 as i64,
        area.x1 as i64,
        area.y1 as i64,
    );
    let mut occupied = Vec::new();
    for (points, colour, opacity) in [(training, TRAINING, 0.55), (samples, GENERATED, 0.65)] {
        for p in points.iter().filter(finite) {
            if let (Some(px), Some(py)) = (x.map(p[0] as f64), y.map(p[1] as f64)) {
                canvas.circle([px, py], 2.5, colour, opacity);
                occupied.push([px, py]);
            }
        }
    }
    canvas.clear_clip();
    let entries = [
        (format!("generated ({})", samples.len()), GENERATED),
        (format!("training ({})", training.len()), TRAINING),
    ];
    draw_legend(&mut canvas, area, &entries, &occupied, |c, at, colour| {
        c.circle(at, 4.0, colour, 1.0)
    });
    canvas.png()
}

/// A line plot with markers: one line per series in [`PALETTE`] order (repeating after ten),
/// a legend, tick labels, a title and axis labels; [`LINES_SIZE`] pixels.
///
/// Points that the axes cannot show (non-finite, or not positive on a log axis) are left out
/// and break their line.
pub fn lines_png(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
    log_x: bool,
    log_y: bool,
) -> Vec<u8> {
    let (width, height) = LINES_SIZE;
    let mut canvas = Canvas::new(width, height, WHITE);
    let area = Area {
        x0: 120.0,
        y0: 50.0,
        x1: width as f64 - 24.0,
        y1: height as f64 - 70.0,
    };
    let points = || series.iter().flat_map(|(_, pts)| pts.iter());
    let x = Axis::fit(points().map(|p| p.0), log_x, area.x0, area.x1);
    let y = Axis::fit(points().map(|p| p.1), log_y, area.y1, area.y0);
    canvas.text(width as f64 / 2.0, 14.0, title, 2, BLACK, Align::Centre);
    draw_axes(&mut canvas, area, &x, &y);
    canvas.text(
        (area.x0 + area.x1) / 2.0,
        height as f64 - 30.0,
        x_label,
        2,
        BLACK,
        Align::Centre,
    );
    canvas.text_up(22.0, (area.y0 + area.y1) / 2.0, y_label, 2, BLACK);
    canvas.set_clip(
        area.x0 as i64,
        area.y0 as i64,
        area.x1 as i64,
        area.y1 as i64,
    );
    let mut occupied = Vec::new();
    for (k, (_, pts)) in series.iter().enumerate() {
        let colour = PALETTE[k % PALETTE.len()];
        let at: Vec<Option<[f64; 2]>> = pts
            .iter()
            .map(|&(a, b)| Some([x.map(a)?, y.map(b)?]))
            .collect();
        for pair in at.windows(2) {
            if let [Some(p), Some(q)] = pair {
                canvas.line(*p, *q, 2.0, colour);
                // Points along the segment, every 8 pixels, for the legend's placement.
                let steps = ((q[0] - p[0]).hypot(q[1] - p[1]) / 8.0).ceil().max(1.0) as usize;
                occupied.extend((0..=steps).map(|k| {
                    let t = k as f64 / steps as f64;
                    [p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])]
                }));
            }
        }
        for p in at.iter().flatten() {
            canvas.circle(*p, 4.0, colour, 1.0);
            occupied.push(*p);
        }
    }
    canvas.clear_clip();
    let entries: Vec<(String, Rgb)> = series
        .iter()
        .enumerate()
        .map(|(k, (name, _))| (name.clone(), PALETTE[k % PALETTE.len()]))
        .collect();
    draw_legend(&mut canvas, area, &entries, &occupied, |c, at, colour| {
        c.line([at[0] - 12.0, at[1]], [at[0] + 12.0, at[1]], 2.0, colour);
        c.circle(at, 4.0, colour, 1.0);
    });
    canvas.png()
}

// ---------------------------------------------------------------------------------------------
// Graph layout.
// ---------------------------------------------------------------------------------------------

/// Node positions in [0, 1]², centred, with the aspect ratio kept: stress majorisation
/// (Gansner, Koren and North 2004) of the shortest-path distances, from a classical-MDS start.
///
/// Distances are BFS hop counts; pairs in different components count as one hop more than the
/// longest path. The start is the top two eigenvectors of the double-centred squared distances
/// (60 steps of subspace iteration from fixed vectors), scaled by the square roots of their
/// eigenvalues; then 60 sweeps move each node in turn to the weighted mean of the positions
/// its distances ask for, weights d⁻². Everything is fixed arithmetic, so the layout is
/// deterministic.
pub fn layout(g: &Graph) -> Vec<[f64; 2]> {
    let n = g.nodes();
    match n {
        0 => return Vec::new(),
        1 => return vec![[0.5, 0.5]],
        _ => {}
    }
    let d = hop_distances(g);
    let mut pos = classical_mds(n, &d);
    stress_majorisation(n, &d, &mut pos, 60);
    normalise(&mut pos);
    pos
}

/// All-pairs BFS hop counts, row-major; unreachable pairs get the longest path plus one.
fn hop_distances(g: &Graph) -> Vec<f64> {
    let n = g.nodes();
    let mut d = vec![f64::INFINITY; n * n];
    let mut queue = VecDeque::new();
    for s in 0..n {
        let row = &mut d[s * n..(s + 1) * n];
        row[s] = 0.0;
        queue.push_back(s);
        while let Some(u) = queue.pop_front() {
            for &v in g.neighbours(u) {
                let v = v as usize;
                if row[v].is_infinite() {
                    row[v] = row[u] + 1.0;
                    queue.push_back(v);
                }
            }
        }
    }
    let longest = d
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    for v in &mut d {
        if v.is_infinite() {
            *v = longest + 1.0;
        }
    }
    d
}

fn classical_mds(n: usize, d: &[f64]) -> Vec<[f64; 2]> {
    // B = −½ J D² J.
    let sq: Vec<f64> = d.iter().map(|v| v * v).collect();
    let row_mean: Vec<f64> = (0..n)
        .map(|i| sq[i * n..(i + 1) * n].iter().sum::<f64>() / n as f64)
        .collect();
    let grand = row_mean.iter().sum::<f64>() / n as f64;
    let mut b = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            b[i * n + j] = -0.5 * (sq[i * n + j] - row_mean[i] - row_mean[j] + grand);
        }
    }
    let multiply = |v: &[f64]| -> Vec<f64> {
        (0..n)
            .map(|i| {
                b[i * n..(i + 1) * n]
                    .iter()
                    .zip(v)
                    .map(|(x, y)| x * y)
                    .sum()
            })
            .collect()
    };
    let mut basis: [Vec<f64>; 2] = [
        (0..n).map(|i| (1.3 * i as f64 + 0.4).sin()).collect(),
        (0..n).map(|i| (2.1 * i as f64 + 1.1).cos()).collect(),
    ];
    orthonormalise(&mut basis);
    for _ in 0..60 {
        basis = [multiply(&basis[0]), multiply(&basis[1])];
        orthonormalise(&mut basis);
    }
    let scale = basis.clone().map(|v| {
        let bv = multiply(&v);
        let lambda: f64 = v.iter().zip(&bv).map(|(x, y)| x * y).sum();
        lambda.max(1e-6).sqrt()
    });
    (0..n)
        .map(|i| [basis[0][i] * scale[0], basis[1][i] * scale[1]])
        .collect()
}

/// Gram–Schmidt on two vectors; a vector that vanishes is replaced by a fixed one.
fn orthonormalise(basis: &mut [Vec<f64>; 2]) {
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    for k in 0..2 {
        if k == 1 {
            let dot: f64 = basis[0].iter().zip(&basis[1]).map(|(a, b)| a * b).sum();
            let first = basis[0].clone();
            for (x, f) in basis[1].iter_mut().zip(&first) {
                *x -= dot * f;
            }
        }
        let len = norm(&basis[k]);
        if len < 1e-12 {
            let n = basis[k].len();
            basis[k] = (0..n)
                .map(|i| if i % 2 == k { 1.0 } else { -1.0 })
                .collect();
            continue;
        }
        basis[k].iter_mut().for_each(|x| *x /= len);
    }
}

fn stress_majorisation(n: usize, d: &[f64], pos: &mut [[f64; 2]], sweeps: usize) {
    for _ in 0..sweeps {
        for i in 0..n {
            let (mut sx, mut sy, mut sw) = (0.0, 0.0, 0.0);
            for j in (0..n).filter(|&j| j != i) {
                let dij = d[i * n + j];
                let w = 1.0 / (dij * dij);
                let (dx, dy) = (pos[i][0] - pos[j][0], pos[i][1] - pos[j][1]);
                let len = (dx * dx + dy * dy).sqrt();
                let (ux, uy) = if len > 1e-12 {
                    (dx / len, dy / len)
                } else {
                    (0.0, 0.0)
                };
                sx += w * (pos[j][0] + dij * ux);
                sy += w * (pos[j][1] + dij * uy);
                sw += w;
            }
            pos[i] = [sx / sw, sy / sw];
        }
    }
}

/// Scales positions into [0, 1]², centred, keeping the aspect ratio.
fn normalise(pos: &mut [[f64; 2]]) {
    let mut lo = [f64::INFINITY; 2];
    let mut hi = [f64::NEG_INFINITY; 2];
    for p in pos.iter() {
        for k in 0..2 {
            lo[k] = lo[k].min(p[k]);
            hi[k] = hi[k].max(p[k]);
        }
    }
    let span = (hi[0] - lo[0]).max(hi[1] - lo[1]);
    for p in pos.iter_mut() {
        for k in 0..2 {
            p[k] = if span > 1e-12 {
                0.5 + (p[k] - (lo[k] + hi[k]) / 2.0) / span
            } else {
                0.5
            };
        }
    }
}
