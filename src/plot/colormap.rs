//! Colour maps and the fixed colours of the plots.
use super::canvas::Rgb;

/// Colour of the data ("simulation") in every plot: a blue, with lighter shades for density fills.
pub(crate) const DATA: Rgb = [31, 95, 170];
/// Colour of the flow samples: a dark orange, distinguishable from the blue also for colour-blind readers.
pub(crate) const FLOW: Rgb = [222, 90, 10];
/// Fill shades of the data's 2-D density, from the 3-sigma band (lightest) to the 1-sigma core.
pub(crate) const DATA_BANDS: [Rgb; 3] = [[198, 219, 239], [120, 172, 218], [40, 110, 185]];
/// Pixels of a map with too few stars.
pub(crate) const MASKED: Rgb = [205, 205, 205];
/// Grey of frames, ticks and legend borders.
pub(crate) const AXIS: Rgb = [40, 40, 40];

/// Matplotlib's tab10 cycle, for curves.
pub(crate) const CYCLE: [Rgb; 10] = [
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

fn to_u8(v: f64) -> u8 {
    (v.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// Viridis (perceptually uniform, dark blue -> green -> yellow) for t in [0, 1], from a degree-6
/// polynomial fit of matplotlib's table (error below 1/255 per channel on most of the range).
pub(crate) fn viridis(t: f64) -> Rgb {
    const C: [[f64; 3]; 7] = [
        [0.277_727_327_223_417_7, 0.005_407_344_544_966_578, 0.334_099_805_335_306_1],
        [0.105_093_043_108_577_4, 1.404_613_529_898_575, 1.384_590_162_594_685],
        [-0.330_861_828_725_556_3, 0.214_847_559_468_213, 0.095_095_163_028_236_59],
        [-4.634_230_498_983_486, -5.799_100_973_351_585, -19.332_440_956_279_87],
        [6.228_269_936_347_081, 14.179_933_366_805_09, 56.690_552_600_681_05],
        [4.776_384_997_670_288, -13.745_145_377_746_01, -65.353_032_633_372_34],
        [-5.435_455_855_934_631, 4.645_852_612_178_535, 26.312_435_249_583_2],
    ];
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 };
    let mut out = [0u8; 3];
    for (k, o) in out.iter_mut().enumerate() {
        let mut v = C[6][k];
        for i in (0..6).rev() {
            v = v * t + C[i][k];
        }
        *o = to_u8(v);
    }
    out
}

/// ColorBrewer RdBu, reversed: negative (t < 0.5) blue, zero (t = 0.5) near-white, positive red.
const RDBU_R: [Rgb; 11] = [
    [5, 48, 97],
    [33, 102, 172],
    [67, 147, 195],
    [146, 197, 222],
    [209, 229, 240],
    [247, 247, 247],
    [253, 219, 199],
    [244, 165, 130],
    [214, 96, 77],
    [178, 24, 43],
    [103, 0, 31],
];

/// Colour of the diverging map at its centre (a residual of exactly zero).
#[cfg(test)]
pub(crate) const DIVERGING_ZERO: Rgb = RDBU_R[5];

/// Diverging map for t in [0, 1]; t = 0.5 gives exactly [`DIVERGING_ZERO`].
pub(crate) fn diverging(t: f64) -> Rgb {
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.5 };
    let f = t * 10.0;
    let i = (f.floor() as usize).min(9);
    let w = f - i as f64;
    let (a, b) = (RDBU_R[i], RDBU_R[i + 1]);
    let mut out = [0u8; 3];
    for k in 0..3 {
        out[k] = (a[k] as f64 + (b[k] as f64 - a[k] as f64) * w).round() as u8;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_maps_hit_their_anchors() {
        // matplotlib viridis: #440154 at 0, #21918c at 0.5, #fde725 at 1.
        let anchors: [(f64, Rgb); 3] =
            [(0.0, [0x44, 0x01, 0x54]), (0.5, [0x21, 0x91, 0x8c]), (1.0, [0xfd, 0xe7, 0x25])];
        for (t, want) in anchors {
            let got = viridis(t);
            for k in 0..3 {
                assert!((got[k] as i32 - want[k] as i32).abs() <= 6, "viridis({t}) = {got:?}, want {want:?}");
            }
        }
        assert_eq!(diverging(0.5), DIVERGING_ZERO);
        assert_eq!(diverging(0.0), RDBU_R[0]);
        assert_eq!(diverging(1.0), RDBU_R[10]);
        assert_eq!(diverging(f64::NAN), DIVERGING_ZERO);
    }
}
