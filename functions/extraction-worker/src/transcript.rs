//! The transcript the model reads: one line per message, the customer and the agent named.

use shared::db::extractions::TranscriptLine;

/// The longest message text put into a transcript (longer ones are cut, marked `…`).
pub const MAX_MESSAGE_CHARS: usize = 4096;
/// The longest transcript: the oldest lines are dropped first.
pub const MAX_TRANSCRIPT_CHARS: usize = 60_000;

/// `Customer (name): text` and `Agent: text`, oldest first, within the limits above.
pub fn render(lines: &[TranscriptLine], customer_name: Option<&str>) -> String {
    let customer = match customer_name.map(str::trim).filter(|n| !n.is_empty()) {
        Some(name) => format!("Customer ({name})"),
        None => "Customer".to_owned(),
    };
    let mut rendered: Vec<String> = lines
        .iter()
        .map(|line| {
            let who = if line.sender == "user" {
                customer.as_str()
            } else {
                "Agent"
            };
            let text: String = line.text.chars().take(MAX_MESSAGE_CHARS).collect();
            let cut = if line.text.chars().count() > MAX_MESSAGE_CHARS {
                "…"
            } else {
                ""
            };
            format!("{who}: {}{cut}", text.replace('\n', " "))
        })
        .collect();
    let mut total: usize = rendered.iter().map(|l| l.chars().count() + 1).sum();
    let mut drop = 0;
    while total > MAX_TRANSCRIPT_CHARS && drop < rendered.len().saturating_sub(1) {
        total -= rendered[drop].chars().count() + 1;
        drop += 1;
    }
    rendered.drain(..drop);
    rendered.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(sender: &str, text: &str) -> TranscriptLine {
        TranscriptLine {
            sender: sender.to_owned(),
            text: text.to_owned(),
        }
    }

    #[test]
    fn lines_name_the_customer_and_the_agent_in_order() {
        let text = render(
            &[line("user", "Hi\nthere"), line("agent", "Hello!")],
            Some("Sheena"),
        );
        assert_eq!(text, "Customer (Sheena): Hi there\nAgent: Hello!");
    }

    #[test]
    fn long_messages_are_cut_and_the_oldest_lines_dropped_first() {
        let long = "é".repeat(MAX_MESSAGE_CHARS + 10);
        let lines: Vec<_> = (0..20).map(|_| line("user", &long)).collect();
        let text = render(&lines, None);
        assert!(text.chars().count() <= MAX_TRANSCRIPT_CHARS);
        assert!(text.lines().all(|l| l.ends_with('…')));
    }
}
