//! Version precedence: which of two release versions is newer (semver where they are,
//! part by part where they are not). Update checks, session start and the latest release of
//! a product all decide with this one rule.

/// A version as clients and operators write it, read as semver: a leading `v` is dropped and
/// missing minor or patch parts count as 0 (`2` is `2.0.0`, `1.4-beta` is `1.4.0-beta`).
fn semver_of(v: &str) -> Option<semver::Version> {
    let v = v.trim().trim_start_matches(['v', 'V']);
    let split = v.find(['-', '+']).unwrap_or(v.len());
    let (core, rest) = v.split_at(split);
    let parts = core.split('.').count();
    if parts == 0 || parts > 3 {
        return None;
    }
    let padded = format!("{core}{}{rest}", ".0".repeat(3 - parts));
    semver::Version::parse(&padded).ok()
}

/// Whether `latest` is a newer version than `current`, by semver precedence (so
/// `1.0.0-rc1` is older than `1.0.0`; build metadata is ignored). Versions that are not
/// semver even after padding are compared part by part, numbers as numbers.
pub fn is_newer(latest: &str, current: &str) -> bool {
    if let (Some(a), Some(b)) = (semver_of(latest), semver_of(current)) {
        return a.cmp_precedence(&b) == std::cmp::Ordering::Greater;
    }
    let parts = |v: &str| -> Vec<String> {
        v.trim()
            .trim_start_matches(['v', 'V'])
            .split(['.', '-', '+'])
            .map(str::to_string)
            .collect()
    };
    let (a, b) = (parts(latest), parts(current));
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).map_or("0", String::as_str);
        let y = b.get(i).map_or("0", String::as_str);
        let ord = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            _ => x.cmp(y),
        };
        if ord != std::cmp::Ordering::Equal {
            return ord == std::cmp::Ordering::Greater;
        }
    }
    false
}

/// Whether `v` is a pre-release (`1.0.0-rc.1`, `2.0-beta`): semver with a pre-release part.
pub fn is_prerelease(v: &str) -> bool {
    semver_of(v).is_some_and(|s| !s.pre.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_comparison_is_numeric_per_part() {
        assert!(is_newer("1.10.0", "1.9.3"));
        assert!(is_newer("2", "1.99"));
        assert!(!is_newer("1.0.0", "1.0"));
        assert!(!is_newer("1.0.0", "1.0.1"));
        assert!(is_newer("v1.2.0", "1.1.9"));
    }

    #[test]
    fn pre_releases_are_recognized() {
        assert!(is_prerelease("1.0.0-rc.1"));
        assert!(is_prerelease("v2.0-beta"));
        assert!(!is_prerelease("1.0.0"));
        assert!(!is_prerelease("1.0.0+build.7"));
        assert!(!is_prerelease("2024.10.01.3"));
    }

    #[test]
    fn pre_releases_precede_their_release() {
        assert!(is_newer("1.0.0", "1.0.0-rc1"));
        assert!(!is_newer("1.0.0-rc1", "1.0.0"));
        assert!(is_newer("1.0.0-rc.10", "1.0.0-rc.9"));
        assert!(is_newer("1.4", "1.4-beta"));
        assert!(
            !is_newer("1.0.0+build.5", "1.0.0+build.4"),
            "build metadata is ignored"
        );
        // Not semver: compared part by part.
        assert!(is_newer("2024.10.01.3", "2024.10.01.2"));
    }
}
