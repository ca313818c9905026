//! Left-aligned text tables for the status screen.

/// Renders rows under a header, columns separated by two spaces. Columns whose header
/// starts with `>` are right-aligned (the `>` is not printed).
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let right: Vec<bool> = header.iter().map(|h| h.starts_with('>')).collect();
    let header: Vec<String> = header
        .iter()
        .map(|h| h.trim_start_matches('>').to_string())
        .collect();
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = width.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: &[String]| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let w = width.get(i).copied().unwrap_or(0);
            let last = i + 1 == cells.len();
            let pad = w.saturating_sub(cell.chars().count());
            if right.get(i).copied().unwrap_or(false) {
                out.push_str(&" ".repeat(pad));
                out.push_str(cell);
            } else {
                out.push_str(cell);
                if !last {
                    out.push_str(&" ".repeat(pad));
                }
            }
            if !last {
                out.push_str("  ");
            }
        }
        out.trim_end().to_string()
    };
    let mut out = line(&header);
    out.push('\n');
    for row in rows {
        out.push_str(&line(row));
        out.push('\n');
    }
    out
}

/// An age in whole seconds, as the API gives it: `2h13m`, `41s`, `3d4h`.
pub fn age(secs: u64) -> String {
    geo_balancer::time::human(std::time::Duration::from_secs(secs))
}

/// `HH:MM:SS` UTC of a unix time.
pub fn clock(unix: u64) -> String {
    let s = unix % 86400;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns() {
        let t = render(
            &["NAME", ">LOAD"],
            &[
                vec!["idc1".into(), "0.84".into()],
                vec!["site-b".into(), "1.1".into()],
            ],
        );
        assert_eq!(t, "NAME    LOAD\nidc1    0.84\nsite-b   1.1\n");
    }

    #[test]
    fn ages_and_clocks() {
        assert_eq!(age(41), "41s");
        assert_eq!(age(125), "2m05s");
        assert_eq!(age(7980), "2h13m");
        assert_eq!(age(2 * 86400 + 3600), "2d1h");
        assert_eq!(clock(13 * 3600 + 58 * 60 + 2), "13:58:02");
    }
}
