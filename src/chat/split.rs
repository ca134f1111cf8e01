//! Fitting text into a chat platform's limits: cut with a note saying how much was left out,
//! or split at line breaks with code blocks kept closed in every piece.

/// Cut `text` to at most `limit` characters, at a line break when there is one in the last
/// fifth, and say how much was cut (`platform` names whose limit it is). A code block the cut
/// leaves open is closed: text inside one is escaped as code, which is not enough outside.
pub fn truncate(text: &str, limit: usize, platform: &str) -> String {
    let total = text.chars().count();
    if total <= limit {
        return text.to_string();
    }
    let note_room = 64;
    let keep = limit.saturating_sub(note_room);
    let mut cut: String = text.chars().take(keep).collect();
    if let Some(newline) = cut.rfind('\n')
        && cut[..newline].chars().count() >= keep * 4 / 5
    {
        cut.truncate(newline);
    }
    // Never end inside an entity or a mention such as `&amp;` or `<@U1>`.
    if let Some(open) = cut.rfind(['&', '<'])
        && !cut[open..].contains([';', '>'])
    {
        cut.truncate(open);
    }
    let left = total - cut.chars().count();
    let close = if cut.matches("```").count() % 2 == 1 {
        "\n```"
    } else {
        ""
    };
    format!("{cut}{close}\n_… {left} more characters not shown ({platform}'s limit)._")
}

/// `text` cut to at most `limit` characters, ending in `…` when cut (labels, names, topics).
pub fn ellipsis(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(limit.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Split a long text into pieces of at most `limit` characters at line breaks (a single
/// over-long line is cut). A code block split across pieces is closed at the end of one and
/// opened again at the start of the next, so the middle of program output never renders as
/// formatted text.
pub fn pieces(text: &str, limit: usize, platform: &str) -> Vec<String> {
    const FENCE: &str = "```";
    // Room for a closing and a reopening fence.
    let budget = limit - 2 * (FENCE.len() + 1);
    let mut out = Vec::new();
    let mut current = String::new();
    let mut in_code = false;
    for line in text.split('\n') {
        let needed = current.chars().count() + line.chars().count() + 1;
        if !current.is_empty() && needed > budget {
            if in_code {
                current.push('\n');
                current.push_str(FENCE);
            }
            out.push(std::mem::take(&mut current));
            if in_code {
                current.push_str(FENCE);
            }
        }
        if !current.is_empty() {
            current.push('\n');
        }
        current.push_str(line);
        if line.matches(FENCE).count() % 2 == 1 {
            in_code = !in_code;
        }
    }
    out.push(current);
    out.into_iter()
        .map(|p| truncate(&p, limit, platform))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_fit_and_keep_code_blocks_closed() {
        let text = format!("```\n{}\n```", "line of output\n".repeat(400));
        let parts = pieces(&text, 2_000, "Discord");
        assert!(parts.len() > 2);
        for part in &parts {
            assert!(part.chars().count() <= 2_000, "{}", part.chars().count());
            assert_eq!(part.matches("```").count() % 2, 0, "{part}");
        }
        let cut = truncate(&"x".repeat(3_000), 2_000, "Discord");
        assert!(cut.chars().count() <= 2_000);
        assert!(cut.ends_with("(Discord's limit)._"), "{cut}");
        // One line too long for a piece: cut, and its code block closed before the note.
        let text = format!(
            "ran `logs`:\n```\n{}\n```",
            "[x](https://e.com) ".repeat(300)
        );
        for part in pieces(&text, 2_000, "Discord") {
            assert!(part.chars().count() <= 2_000, "{}", part.chars().count());
            assert_eq!(part.matches("```").count() % 2, 0, "{part}");
        }
    }
}
