//! Search terms: what an entity is indexed under and how a query is read, one rule for both
//! so a query finds what indexing stored. Terms are lower-case; an entity is indexed under
//! each whole field and each word of it, so a query matches a prefix of either ("acme c"
//! finds "ACME Corp", "corp" finds it too).

use crate::store::catalog::{MAX_TERM_LEN, MAX_TERMS};

/// The first character of internal terms (a customer link, not text): a control character,
/// which [`normalize`] removes from every query, so no query can reach one by prefix.
pub const INTERNAL: char = '\u{1}';

/// `s` lower-cased and trimmed, runs of whitespace as one space, control characters
/// dropped, cut to [`MAX_TERM_LEN`] bytes at a character boundary.
pub fn normalize(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_TERM_LEN));
    let mut space = false;
    for c in s.trim().chars().flat_map(char::to_lowercase) {
        if c.is_control() {
            continue;
        }
        if c.is_whitespace() {
            space = true;
            continue;
        }
        let extra = if space && !out.is_empty() { 1 } else { 0 };
        if out.len() + extra + c.len_utf8() > MAX_TERM_LEN {
            break;
        }
        if extra == 1 {
            out.push(' ');
        }
        space = false;
        out.push(c);
    }
    out
}

/// The words of `s`: maximal runs of letters and digits, normalized.
pub fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(normalize)
        .filter(|w| !w.is_empty())
        .collect()
}

/// The terms an entity with these text fields is indexed under: each whole field and each
/// word, without duplicates, at most [`MAX_TERMS`] (whole fields first).
pub fn terms_of<'a>(fields: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let fields: Vec<&str> = fields.into_iter().collect();
    let mut out: Vec<String> = Vec::new();
    let mut push = |t: String| {
        if !t.is_empty() && !out.contains(&t) && out.len() < MAX_TERMS {
            out.push(t);
        }
    };
    for f in &fields {
        push(normalize(f));
    }
    for f in &fields {
        for w in words(f) {
            push(w);
        }
    }
    out
}

/// The internal term linking a license to its customer.
pub fn customer_link(customer_id: u64) -> String {
    format!("{INTERNAL}customer:{customer_id}")
}

/// Whether an entity with these fields matches `query`: the whole query is a prefix of a
/// field, or every word of the query is a prefix of some word of the fields. Index hits
/// are checked with this, so a stale index entry never shows a result that no longer
/// matches.
pub fn matches<'a>(query: &str, fields: impl IntoIterator<Item = &'a str>) -> bool {
    let q = normalize(query);
    if q.is_empty() {
        return false;
    }
    let fields: Vec<&str> = fields.into_iter().collect();
    if fields.iter().any(|f| normalize(f).starts_with(&q)) {
        return true;
    }
    let have: Vec<String> = fields.iter().flat_map(|f| words(f)).collect();
    let want = words(&q);
    !want.is_empty() && want.iter().all(|w| have.iter().any(|h| h.starts_with(w)))
}

/// The index prefixes a query is looked up under: the whole query, and its longest word
/// when the query has several (the rarest prefix, usually).
pub fn lookups(query: &str) -> Vec<String> {
    let q = normalize(query);
    if q.is_empty() {
        return Vec::new();
    }
    let mut out = vec![q.clone()];
    let ws = words(&q);
    if ws.len() > 1
        && let Some(longest) = ws.iter().max_by_key(|w| w.len())
        && !out.contains(longest)
    {
        out.push(longest.clone());
    } else if ws.len() == 1 && ws[0] != q {
        out.push(ws[0].clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn fields_and_their_words_are_terms() {
        assert_eq!(
            terms_of(["ACME  Corp", "admin@acme.com"]),
            [
                "acme corp",
                "admin@acme.com",
                "acme",
                "corp",
                "admin",
                "com"
            ]
        );
        assert!(terms_of(["", "  "]).is_empty());
    }

    #[test]
    fn a_query_matches_a_field_prefix_or_every_word() {
        let fields = ["ACME Corp", "admin@acme.com"];
        assert!(matches("acme c", fields));
        assert!(matches("corp", fields));
        assert!(matches("CORP acm", fields));
        assert!(matches("admin@ac", fields));
        assert!(!matches("acme x", fields));
        assert!(!matches("", fields));
        assert!(!matches(&format!("{INTERNAL}customer"), fields));
    }

    #[test]
    fn lookups_use_the_whole_query_and_its_longest_word() {
        assert_eq!(
            lookups(" ACME   Corporation "),
            ["acme corporation", "corporation"]
        );
        assert_eq!(lookups("abcd-efgh"), ["abcd-efgh", "efgh"]);
        assert_eq!(lookups("admin@"), ["admin@", "admin"]);
        assert!(lookups("\u{1}").is_empty());
    }

    #[test]
    fn internal_terms_are_unreachable_from_queries() {
        assert!(!normalize(&customer_link(7)).starts_with(INTERNAL));
        assert!(
            lookups(&customer_link(7))
                .iter()
                .all(|l| !l.starts_with(INTERNAL))
        );
    }

    proptest! {
        #[test]
        fn terms_are_bounded_and_nul_free(fields in proptest::collection::vec(".{0,200}", 0..10)) {
            let t = terms_of(fields.iter().map(String::as_str));
            prop_assert!(t.len() <= MAX_TERMS);
            for term in &t {
                prop_assert!(!term.is_empty() && term.len() <= MAX_TERM_LEN);
                prop_assert!(!term.contains('\0'));
            }
        }

        #[test]
        fn every_indexed_field_is_found_by_its_own_prefix(field in "[a-zA-Z0-9 @.-]{1,40}", cut in 1usize..40) {
            let terms = terms_of([field.as_str()]);
            let n = normalize(&field);
            prop_assume!(!n.is_empty());
            let q: String = n.chars().take(cut).collect();
            // Some lookup prefix of the query is a prefix of some term, and the entity matches.
            prop_assert!(lookups(&q).iter().any(|l| terms.iter().any(|t| t.starts_with(l.as_str()))));
            prop_assert!(matches(&q, [field.as_str()]));
        }
    }
}
