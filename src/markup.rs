//! Escaping text into XML and HTML: one function for the PlayReady header (XML) and the
//! operators' player page (HTML), so the two can never disagree about what is safe; and the
//! one way the XML manifests (MPD, Smooth client manifest) are written from their models.

/// Escapes `text` for element content and for double- or single-quoted attribute values, in
/// XML and HTML alike. Control characters are dropped: XML 1.0 forbids most of them, and none
/// belongs in a URL or a name.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// `doc` (a serde model whose attributes are `@name` renames) as an XML document: the
/// declaration, elements indented by two spaces, a final newline. `capacity`: the expected
/// length, so a long manifest is written without regrowing.
pub(crate) fn xml_document<T: serde::Serialize>(doc: &T, capacity: usize) -> String {
    let mut out = String::with_capacity(capacity);
    out.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    let mut ser = quick_xml::se::Serializer::new(&mut out);
    ser.indent(' ', 2);
    // Serializing plain structs of strings and integers into a String cannot fail; should it
    // ever, the truncated document fails XML parsing loudly rather than panicking here.
    let _ = doc.serialize(ser);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn markup_and_quotes_are_escaped_and_controls_dropped() {
        assert_eq!(escape("a<b>&\"c\"'d'"), "a&lt;b&gt;&amp;&quot;c&quot;&#39;d&#39;");
        assert_eq!(escape("x\u{1}\ny"), "xy");
        assert_eq!(escape("https://l.example/?a=1&b=2"), "https://l.example/?a=1&amp;b=2");
    }
}
