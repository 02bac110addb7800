//! A description as the Calendar web editor stores it.
//!
//! The Events reference says only that a description "Can contain HTML".
//! What the editor produces is not documented; what is seen from the API
//! after a person saves an event in the browser is HTML: lines joined with
//! `<br>`, web addresses turned into links (`<a href="URL">URL</a>`), and
//! `&`, `<`, `>` escaped. That is what this rewrite does.
//!
//! Approximated or left out: the editor may also wrap text in `<span>`,
//! turn runs of spaces into `&nbsp;`, keep rich text (`<b>`, `<i>`, `<u>`,
//! lists) a person typed, and send links through `google.com/url?q=...`
//! in some versions; none of that is done here. A description that already
//! holds markup is left as it is (the editor keeps its own markup).

/// Whether `text` already looks like the editor's HTML.
pub fn looks_like_html(text: &str) -> bool {
    ["<br", "<a ", "<p>", "<div", "<span", "<b>", "<ul", "<ol"]
        .iter()
        .any(|t| text.contains(t))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Where a URL ends: at whitespace or at characters that do not belong to
/// one in running text; trailing punctuation stays outside the link.
fn url_len(s: &str) -> usize {
    let end = s
        .find(|c: char| {
            c.is_whitespace() || matches!(c, '<' | '>' | '"' | '「' | '」' | '、' | '。')
        })
        .unwrap_or(s.len());
    let mut url = &s[..end];
    while let Some(c) = url.chars().last() {
        if matches!(c, '.' | ',' | ')' | ';' | ':' | '!' | '?') {
            url = &url[..url.len() - c.len_utf8()];
        } else {
            break;
        }
    }
    url.len()
}

fn linkify_line(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    loop {
        let next = ["https://", "http://"]
            .iter()
            .filter_map(|p| rest.find(p))
            .min();
        let Some(at) = next else {
            out.push_str(&escape(rest));
            return out;
        };
        out.push_str(&escape(&rest[..at]));
        let len = url_len(&rest[at..]);
        let url = escape(&rest[at..at + len]);
        out.push_str(&format!("<a href=\"{url}\">{url}</a>"));
        rest = &rest[at + len..];
    }
}

/// The description after a round trip through the web editor.
pub fn as_web_editor_saves(text: &str) -> String {
    if looks_like_html(text) {
        return text.to_string();
    }
    text.replace("\r\n", "\n")
        .split('\n')
        .map(linkify_line)
        .collect::<Vec<_>>()
        .join("<br>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_join_with_br_and_links_become_anchors() {
        let plain = "面接: 山田 太郎\nWeb会議: https://meet.example/abc?x=1&y=2\n場所: 本社 <7F>";
        assert_eq!(
            as_web_editor_saves(plain),
            "面接: 山田 太郎<br>Web会議: <a href=\"https://meet.example/abc?x=1&amp;y=2\">https://meet.example/abc?x=1&amp;y=2</a><br>場所: 本社 &lt;7F&gt;"
        );
        // the round trip is stable
        let once = as_web_editor_saves(plain);
        assert_eq!(as_web_editor_saves(&once), once);
        assert_eq!(
            as_web_editor_saves("see https://a.example/x."),
            "see <a href=\"https://a.example/x\">https://a.example/x</a>."
        );
    }
}
