//! CIB ids to quorate names: a quorate name is a DNS label (lower-case letters, digits,
//! `-`), a CIB id is an XML id (`DB_main`, `web.clone`). Each kind of document has its
//! own namespace, so each gets its own [`Names`].

use std::collections::BTreeSet;

use crate::spec::Name;

/// The quorate form of `id`: lower-cased, every other character a `-`, runs of `-`
/// collapsed, a leading letter ensured, at most 63 characters. `None` when nothing is
/// left (an id of punctuation only).
pub(crate) fn sanitize(id: &str) -> Option<Name> {
    let mut s = String::new();
    for c in id.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            s.push(c);
        } else if !s.ends_with('-') {
            s.push('-');
        }
    }
    let s = s.trim_matches('-');
    if s.is_empty() {
        return None;
    }
    let mut s = if s.starts_with(|c: char| c.is_ascii_digit()) {
        format!("r-{s}")
    } else {
        s.to_owned()
    };
    s.truncate(63);
    s.trim_end_matches('-').parse().ok()
}

/// Names given so far in one namespace.
#[derive(Debug, Default)]
pub(crate) struct Names {
    taken: BTreeSet<Name>,
}

/// A name given to an id: the name, and whether it differs from the id.
pub(crate) struct Given {
    pub name: Name,
    pub renamed: bool,
}

impl Names {
    /// A fresh name for `id`: its sanitized form, with `-2`, `-3`, ... appended when that
    /// is taken. `None` when the id has no usable character.
    pub(crate) fn give(&mut self, id: &str) -> Option<Given> {
        let base = sanitize(id)?;
        let mut name = base.clone();
        let mut n = 2u32;
        while self.taken.contains(&name) {
            let suffix = format!("-{n}");
            let mut stem = base.as_str().to_owned();
            stem.truncate(63 - suffix.len());
            name = format!("{}{suffix}", stem.trim_end_matches('-'))
                .parse()
                .ok()?;
            n += 1;
        }
        self.taken.insert(name.clone());
        let renamed = name.as_str() != id;
        Some(Given { name, renamed })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_become_dns_labels() {
        let s = |id: &str| sanitize(id).map(|n| n.to_string());
        assert_eq!(s("db").as_deref(), Some("db"));
        assert_eq!(s("DB_main").as_deref(), Some("db-main"));
        assert_eq!(s("web.clone--x").as_deref(), Some("web-clone-x"));
        assert_eq!(s("1st").as_deref(), Some("r-1st"));
        assert_eq!(s("node1.example.com").as_deref(), Some("node1-example-com"));
        assert_eq!(s("___"), None);
        assert_eq!(s(&"a".repeat(100)).map(|n| n.as_str().len()), Some(63));
    }

    #[test]
    fn clashing_ids_get_numbered() {
        let mut names = Names::default();
        let a = names.give("web_1").unwrap();
        let b = names.give("web-1").unwrap();
        assert_eq!(a.name.as_str(), "web-1");
        assert!(a.renamed);
        assert_eq!(b.name.as_str(), "web-1-2");
        assert!(b.renamed);
        assert!(!names.give("db").unwrap().renamed);
    }
}
