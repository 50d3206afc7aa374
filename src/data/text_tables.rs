//! The text tables users hand over, parsed from their text alone (std only, so the fuzz harness compiles
//! this file as it is): the extra-conditions CSV (`id,name1,name2,...`, one galaxy per row) and a CAMELS
//! parameter table (one parameter set per row). Errors are messages; callers add the file's path.

/// Galaxy ids with their values, in file order.
pub type IdRows = Vec<(String, Vec<f64>)>;

/// An extra-conditions CSV: its condition names and each row's id and values (all finite numbers).
pub fn extra_conditions(text: &str) -> Result<(Vec<String>, IdRows), String> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = lines.next().ok_or("empty condition file")?;
    let cols: Vec<&str> = header.split(',').map(str::trim).collect();
    if cols.len() < 2 || cols[0] != "id" {
        return Err("the header must be `id,name1,name2,...`".into());
    }
    let mut rows = Vec::new();
    for (ln, line) in lines.enumerate() {
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        if f.len() != cols.len() {
            return Err(format!("line {}: {} fields, header has {}", ln + 2, f.len(), cols.len()));
        }
        let vals = f[1..]
            .iter()
            .map(|v| v.parse::<f64>().ok().filter(|v| v.is_finite()))
            .collect::<Option<Vec<f64>>>()
            .ok_or_else(|| format!("line {}: not all values are finite numbers", ln + 2))?;
        rows.push((f[0].to_string(), vals));
    }
    Ok((cols[1..].iter().map(|s| s.to_string()).collect(), rows))
}

/// (Omega_m, sigma_8) of every row of a CAMELS parameter table: whitespace- or comma-separated, an optional
/// leading name per row, an optional header line (CAMELS_params.csv starts "Name,,,,,,,seed"), `#` comments.
pub fn camels_params(text: &str) -> Result<Vec<[f32; 2]>, String> {
    let mut rows = Vec::new();
    let mut seen_line = false;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> =
            if t.contains(',') { t.split(',').map(str::trim).collect() } else { t.split_whitespace().collect() };
        let num = |s: &str| s.parse::<f32>().ok();
        // A leading field that is not a number is the simulation's name.
        let vals = if fields.first().is_some_and(|f| num(f).is_some()) { &fields[..] } else { &fields[1..] };
        let first = !seen_line;
        seen_line = true;
        // The first line is a header when none of its fields after the name is a number.
        if first && vals.iter().all(|v| num(v).is_none()) {
            continue;
        }
        match (vals.first().and_then(|v| num(v)), vals.get(1).and_then(|v| num(v))) {
            (Some(om), Some(s8)) if om.is_finite() && s8.is_finite() && om > 0.0 && s8 > 0.0 => rows.push([om, s8]),
            _ => {
                return Err(format!(
                    "line {}: expected [name] Omega_m sigma_8 ... as positive numbers, found '{t}'",
                    i + 1
                ))
            }
        }
    }
    if rows.is_empty() {
        return Err("no parameter rows".into());
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_parse_or_say_why() {
        let (names, rows) = extra_conditions("id, z0 ,z1\n\ng1,1,2e-3\n").unwrap();
        assert_eq!(
            (names, rows),
            (vec!["z0".to_string(), "z1".to_string()], vec![("g1".to_string(), vec![1.0, 2e-3])])
        );
        assert_eq!(
            camels_params("# c\nName,,,seed\nLH_0,0.3,0.8,1\n0.1 0.6 7\n").unwrap(),
            vec![[0.3, 0.8], [0.1, 0.6]]
        );
        for bad in ["", ",", "id", "x,y\n1,2", "id,a\ng,nan", "id,a\ng,1,2"] {
            assert!(extra_conditions(bad).is_err(), "{bad:?}");
        }
        for bad in ["", ",", "#", "LH 0.3 -0.8", "LH_0 0.3\n", "name\n,,", "0.3 0.8\nx"] {
            assert!(camels_params(bad).is_err(), "{bad:?}");
        }
    }
}
