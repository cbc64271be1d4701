//! Charts of a run over the day: queue length, service level and staffing, as SVG and PNG.
//!
//! Plotters draws the lines; text is measured (both files) and rasterised (PNG) by
//! [`Typeset`], which wraps a plotters backend and typesets with `ab_glyph` and a TrueType
//! font built into the binary (DejaVu Sans, from the `dejavu` crate), so charts look the same
//! on every machine and need no system fonts. (Plotters' own font features are left off: they
//! would be unified into every crate of the workspace that uses plotters, criterion's plots
//! included, and need fontconfig.)

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ab_glyph::{Font, FontRef, PxScale, ScaleFont, point};
use anyhow::{Context, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{BackendColor, BackendCoord, BackendTextStyle, DrawingErrorKind};

use crate::report::{NamedSeries, Report};

/// Chart size in pixels.
pub const SIZE: (u32, u32) = (1200, 1100);

/// The chart font, parsed once.
pub fn font() -> anyhow::Result<&'static FontRef<'static>> {
    static FONT: OnceLock<Result<FontRef<'static>, String>> = OnceLock::new();
    FONT.get_or_init(|| {
        FontRef::try_from_slice(dejavu::sans::regular()).map_err(|e| format!("the built-in font: {e}"))
    })
    .as_ref()
    .map_err(|e| anyhow!("{e}"))
}

/// `prefix` with `.extension` appended (`out/day` → `out/day.svg`).
pub fn with_suffix(prefix: &Path, extension: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(".");
    s.push(extension);
    PathBuf::from(s)
}

/// Writes `PREFIX.svg` and `PREFIX.png`; returns their paths.
pub fn write(report: &Report, prefix: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let font = font()?;
    let svg = with_suffix(prefix, "svg");
    let png = with_suffix(prefix, "png");
    {
        let backend = Typeset { inner: SVGBackend::new(&svg, SIZE), font, raster: false };
        let root = backend.into_drawing_area();
        draw(&root, report).map_err(|e| anyhow!("drawing {}: {e}", svg.display()))?;
        root.present().map_err(|e| anyhow!("writing {}: {e}", svg.display()))?;
    }
    {
        let backend = Typeset { inner: BitMapBackend::new(&png, SIZE), font, raster: true };
        let root = backend.into_drawing_area();
        draw(&root, report).map_err(|e| anyhow!("drawing {}: {e}", png.display()))?;
        root.present().map_err(|e| anyhow!("writing {}: {e}", png.display()))?;
    }
    std::fs::metadata(&png).with_context(|| format!("{} was not written", png.display()))?;
    Ok((svg, png))
}

/// A plotters backend that measures text with a real font and, when `raster` is set, draws it
/// pixel by pixel (anti-aliased); everything else goes to the wrapped backend.
pub struct Typeset<B> {
    /// The wrapped backend.
    pub inner: B,
    /// The font.
    pub font: &'static FontRef<'static>,
    /// Rasterise text (bitmaps) rather than hand it to the backend (SVG).
    pub raster: bool,
}

impl<B> Typeset<B> {
    /// Width and height of `text` at `size` pixels.
    fn measure(&self, text: &str, size: f64) -> (f32, f32) {
        // Plotters' SVG backend writes font-size as the size ÷ 1.24.
        let size = if self.raster { size } else { size / 1.24 };
        let scaled = self.font.as_scaled(PxScale::from(size as f32));
        let mut width = 0.0;
        let mut previous = None;
        for c in text.chars() {
            let id = scaled.glyph_id(c);
            if let Some(p) = previous {
                width += scaled.kern(p, id);
            }
            width += scaled.h_advance(id);
            previous = Some(id);
        }
        (width, scaled.ascent() - scaled.descent())
    }
}

type BackendResult<E> = Result<(), DrawingErrorKind<E>>;

impl<B: DrawingBackend> DrawingBackend for Typeset<B> {
    type ErrorType = B::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }

    fn ensure_prepared(&mut self) -> BackendResult<B::ErrorType> {
        self.inner.ensure_prepared()
    }

    fn present(&mut self) -> BackendResult<B::ErrorType> {
        self.inner.present()
    }

    fn draw_pixel(&mut self, point: BackendCoord, color: BackendColor) -> BackendResult<B::ErrorType> {
        self.inner.draw_pixel(point, color)
    }

    fn draw_line<S: plotters_backend::BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> BackendResult<B::ErrorType> {
        self.inner.draw_line(from, to, style)
    }

    fn draw_rect<S: plotters_backend::BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> BackendResult<B::ErrorType> {
        self.inner.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn draw_path<S: plotters_backend::BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> BackendResult<B::ErrorType> {
        self.inner.draw_path(path, style)
    }

    fn draw_circle<S: plotters_backend::BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> BackendResult<B::ErrorType> {
        self.inner.draw_circle(center, radius, style, fill)
    }

    fn fill_polygon<S: plotters_backend::BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> BackendResult<B::ErrorType> {
        self.inner.fill_polygon(vert, style)
    }

    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> BackendResult<B::ErrorType> {
        self.inner.blit_bitmap(pos, size, src)
    }

    fn estimate_text_size<S: BackendTextStyle>(
        &self,
        text: &str,
        style: &S,
    ) -> Result<(u32, u32), DrawingErrorKind<B::ErrorType>> {
        let (w, h) = self.measure(text, style.size());
        Ok((w.ceil() as u32, h.ceil() as u32))
    }

    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> BackendResult<B::ErrorType> {
        if !self.raster {
            return self.inner.draw_text(text, style, pos);
        }
        let color = style.color();
        if color.alpha == 0.0 {
            return Ok(());
        }
        let (w, h) = self.measure(text, style.size());
        let (w, h) = (w.round() as i32, h.round() as i32);
        let anchor = style.anchor();
        let dx = match anchor.h_pos {
            HPos::Left => 0,
            HPos::Right => -w,
            HPos::Center => -w / 2,
        };
        let dy = match anchor.v_pos {
            VPos::Top => 0,
            VPos::Center => -h / 2,
            VPos::Bottom => -h,
        };
        let transform = style.transform();
        let scaled = self.font.as_scaled(PxScale::from(style.size() as f32));
        let mut pixels: Vec<(i32, i32, f32)> = Vec::new();
        let mut caret = 0.0;
        let mut previous = None;
        for c in text.chars() {
            let id = scaled.glyph_id(c);
            if let Some(p) = previous {
                caret += scaled.kern(p, id);
            }
            let glyph = id.with_scale_and_position(scaled.scale(), point(caret, scaled.ascent()));
            if let Some(outline) = self.font.outline_glyph(glyph) {
                let bounds = outline.px_bounds();
                outline.draw(|gx, gy, coverage| {
                    if coverage > 0.0 {
                        pixels.push((
                            bounds.min.x as i32 + gx as i32,
                            bounds.min.y as i32 + gy as i32,
                            coverage,
                        ));
                    }
                });
            }
            caret += scaled.h_advance(id);
            previous = Some(id);
        }
        let (width, height) = self.get_size();
        for (x, y, coverage) in pixels {
            let (x, y) = transform.transform(x + dx, y + dy);
            let (x, y) = (pos.0 + x, pos.1 + y);
            if x >= 0 && y >= 0 && (x as u32) < width && (y as u32) < height {
                let c = BackendColor { alpha: color.alpha * f64::from(coverage.min(1.0)), rgb: color.rgb };
                self.inner.draw_pixel((x, y), c)?;
            }
        }
        Ok(())
    }
}

fn color(i: usize) -> RGBColor {
    const COLORS: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(255, 127, 14),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(23, 190, 207),
    ];
    COLORS[i % COLORS.len()]
}

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, report: &Report) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let body = root.titled(&report.scenario, ("sans-serif", 24))?;
    let panels = body.split_evenly((3, 1));
    let s = &report.series;
    let step = s.interval_minutes / 60.0;
    let x_max = s.hours.last().map_or(24.0, |h| h + step);
    let max_of = |series: &[NamedSeries]| {
        series.iter().flat_map(|n| n.values.iter().flatten()).fold(0.0_f64, |m, &v| m.max(v))
    };
    panel(
        &panels[0],
        "Queue length (mean waiting contacts)",
        "contacts",
        &s.queue_length,
        &s.hours,
        step,
        x_max,
        (max_of(&s.queue_length) * 1.15).max(1.0),
        1.0,
    )?;
    panel(
        &panels[1],
        "Service level of contacts arriving in each interval (dashed: target)",
        "service level %",
        &s.service_level,
        &s.hours,
        step,
        x_max,
        105.0,
        100.0,
    )?;
    panel(
        &panels[2],
        "Staffing (agents logged in; for a capacity-level pool, contacts declared)",
        "agents",
        &s.staffing,
        &s.hours,
        step,
        x_max,
        (max_of(&s.staffing) * 1.15).max(1.0),
        1.0,
    )?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    caption: &str,
    y_desc: &str,
    series: &[NamedSeries],
    hours: &[f64],
    step: f64,
    x_max: f64,
    y_max: f64,
    scale: f64,
) -> DrawResult<DB> {
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .caption(caption, ("sans-serif", 19))
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc("hour of day")
        .y_desc(y_desc)
        .x_labels((x_max as usize + 1).min(25))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .draw()?;
    for (i, s) in series.iter().enumerate() {
        let c = color(i);
        let style = c.stroke_width(2);
        chart
            .draw_series(LineSeries::new(std::iter::empty::<(f64, f64)>(), style))?
            .label(s.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        // A step line per run of defined values.
        let mut run: Vec<(f64, f64)> = Vec::new();
        let mut flush = |run: &mut Vec<(f64, f64)>| -> DrawResult<DB> {
            if !run.is_empty() {
                chart.draw_series(LineSeries::new(run.drain(..), style))?;
            }
            Ok(())
        };
        for (h, v) in hours.iter().zip(&s.values) {
            match v {
                Some(v) => {
                    run.push((*h, v * scale));
                    run.push((h + step, v * scale));
                }
                None => flush(&mut run)?,
            }
        }
        flush(&mut run)?;
        if let Some(target) = s.target {
            let y = target * scale;
            chart.draw_series(DashedLineSeries::new([(0.0, y), (x_max, y)], 8, 6, c.stroke_width(1)))?;
        }
    }
    if !series.is_empty() {
        // Service levels sit near the top: keep their legend out of the way.
        let position =
            if scale > 1.0 { SeriesLabelPosition::LowerRight } else { SeriesLabelPosition::UpperRight };
        chart
            .configure_series_labels()
            .position(position)
            .label_font(("sans-serif", 14))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .draw()?;
    }
    Ok(())
}
