//! Counts written out for people: "1 agent", "3 agents", never "agent(s)".

/// `n` followed by the singular or the plural form of a word.
pub fn count(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn one_is_singular_and_every_other_number_plural() {
        assert_eq!(count(1, "agent", "agents"), "1 agent");
        assert_eq!(count(0, "agent", "agents"), "0 agents");
        assert_eq!(count(2, "check", "checks"), "2 checks");
        assert_eq!(count(21, "hour", "hours"), "21 hours");
    }
}
