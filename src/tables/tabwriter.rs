//! Column alignment as Go's `text/tabwriter` does it, which is how kubectl lays out both its
//! tables (`get`) and its descriptions (`describe`).
//!
//! Text is lines of cells separated by tabs; a cell ended by a tab belongs to a column, the
//! text after a line's last tab does not. A column is aligned only over a *block*: a run of
//! consecutive lines that all have a tab-ended cell in it. So a line without tabs
//! (`Pod Template:`) ends every block, and sections of a description align independently.
//!
//! Invariant: pure function of the text; widths count characters, not bytes.

/// The layout parameters kubectl uses.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// The narrowest a column may be, padding included.
    pub min_width: usize,
    /// Spaces added after the widest cell of a column.
    pub padding: usize,
}

/// `kubectl get`: `printers.GetNewTabWriter` (minwidth 6, padding 3).
pub const TABLE: Layout = Layout {
    min_width: 6,
    padding: 3,
};

/// `kubectl describe`: `tabbedString` (minwidth 0, padding 2).
pub const DESCRIBE: Layout = Layout {
    min_width: 0,
    padding: 2,
};

/// Aligns `text` (tab-separated cells, `\n`-ended lines) with `layout`.
pub fn align(text: &str, layout: Layout) -> String {
    let mut lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    // The text after the final line break is an unfinished line; printed as is.
    let tail = lines
        .pop()
        .map(|cells| cells.join("\t"))
        .unwrap_or_default();
    let mut out = String::with_capacity(text.len() * 2);
    let mut widths = Vec::new();
    format_block(&lines, 0, lines.len(), &mut widths, layout, &mut out);
    out.push_str(&tail);
    out
}

fn width_of(cell: &str) -> usize {
    cell.chars().count()
}

/// Lays out lines `from..to`, the columns left of `widths.len()` being fixed already: finds
/// each block of the next column, fixes its width, and recurses for the columns right of it.
fn format_block(
    lines: &[Vec<&str>],
    from: usize,
    to: usize,
    widths: &mut Vec<usize>,
    layout: Layout,
    out: &mut String,
) {
    let column = widths.len();
    let mut printed = from;
    let mut line = from;
    while line < to {
        if column + 1 >= lines[line].len() {
            line += 1;
            continue;
        }
        write_lines(lines, printed, line, widths, out);
        let start = line;
        let mut width = layout.min_width;
        while line < to && column + 1 < lines[line].len() {
            width = width.max(width_of(lines[line][column]) + layout.padding);
            line += 1;
        }
        widths.push(width);
        format_block(lines, start, line, widths, layout, out);
        widths.pop();
        printed = line;
    }
    write_lines(lines, printed, to, widths, out);
}

fn write_lines(lines: &[Vec<&str>], from: usize, to: usize, widths: &[usize], out: &mut String) {
    for cells in &lines[from..to] {
        for (j, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if let Some(width) = widths.get(j) {
                let pad = width.saturating_sub(width_of(cell));
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_align_independently() {
        let text = "Name:\tweb\nNamespace:\tdefault\nPod Template:\n  Labels:\tapp=web\n";
        assert_eq!(
            align(text, DESCRIBE),
            "Name:       web\nNamespace:  default\nPod Template:\n  Labels:  app=web\n"
        );
    }

    #[test]
    fn table_columns_have_min_width_and_padding() {
        let text = "NAME\tA\tAGE\nweb\t1\t5m\n";
        assert_eq!(align(text, TABLE), "NAME   A     AGE\nweb    1     5m\n");
    }

    #[test]
    fn nested_columns_align_within_their_block() {
        // The second column is aligned only over the lines that have a third cell.
        let text = "a\tb\tc\naaaa\tbb\nx\ty\tz\n";
        assert_eq!(align(text, DESCRIBE), "a     b  c\naaaa  bb\nx     y  z\n");
    }
}
