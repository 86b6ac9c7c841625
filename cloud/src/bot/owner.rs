//! The one answer to a button pressed by someone other than the account
//! that paired the agent (every callback checks the owner).

pub(super) const NOT_YOURS: &str = "Only the account that paired this agent can do that.";
