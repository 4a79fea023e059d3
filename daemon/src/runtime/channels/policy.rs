//! Who gets an answer, decided before any model is called: the account's `dm_policy` for direct
//! messages (pairing, allowlist, open, disabled), its `group_policy` and `require_mention` for
//! groups. Senders in `allow_from` and those whose pairing was approved are allowed.

use gateway_config::{DmPolicy, GroupPolicy};

use super::state::{ChannelState, Pairing};
use super::{Chat, Inbound};
use crate::core::store::StoreError;

/// The policy part of an account's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub dm: DmPolicy,
    pub allow_from: Vec<String>,
    pub group: GroupPolicy,
    pub require_mention: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Answer,
    /// An unknown sender under `pairing`: send this code, nothing else.
    SendPairingCode(String),
    /// No answer, and why (for the debug log).
    Ignore(&'static str),
}

impl Policy {
    /// True when `allow_from` names the sender: `*`, the id, or a mask of `nick!user@host`.
    fn listed(&self, inbound: &Inbound) -> bool {
        self.allow_from.iter().any(|entry| {
            entry == "*"
                || entry.eq_ignore_ascii_case(&inbound.peer)
                || ((entry.contains('!') || entry.contains('@')) && glob(entry, &inbound.peer_mask))
        })
    }

    pub fn decide(&self, state: &ChannelState, inbound: &Inbound) -> Result<Decision, StoreError> {
        let allowed = || -> Result<bool, StoreError> {
            Ok(self.listed(inbound)
                || state.is_allowed(inbound.channel, &inbound.account, &inbound.peer_key())?)
        };
        Ok(match &inbound.chat {
            Chat::Dm => match self.dm {
                DmPolicy::Disabled => Decision::Ignore("direct messages are disabled"),
                DmPolicy::Open => Decision::Answer,
                _ if allowed()? => Decision::Answer,
                DmPolicy::Allowlist => Decision::Ignore("sender not in the allowlist"),
                DmPolicy::Pairing => {
                    match state.request_pairing(
                        inbound.channel,
                        &inbound.account,
                        &inbound.peer_key(),
                        &inbound.display,
                    )? {
                        Pairing::New(code) => Decision::SendPairingCode(code),
                        Pairing::Waiting(_) => Decision::Ignore("pairing waits for approval"),
                        Pairing::Full => Decision::Ignore("too many pairing requests waiting"),
                    }
                }
            },
            Chat::Group(_) => match self.group {
                GroupPolicy::Disabled => Decision::Ignore("groups are disabled"),
                _ if self.require_mention && !inbound.mentioned => Decision::Ignore("not mentioned"),
                GroupPolicy::Open => Decision::Answer,
                GroupPolicy::Allowlist if allowed()? => Decision::Answer,
                GroupPolicy::Allowlist => Decision::Ignore("sender not in the allowlist"),
            },
        })
    }
}

/// What the sender of a pairing code is told.
pub fn pairing_message(channel: &str, code: &str) -> String {
    format!(
        "Hi! I don't know you yet. Your pairing code is {code}. Ask my owner to approve it with: gatewayctl pairing approve {channel} {code}"
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::core::store::Store;

    fn inbound(peer: &str, chat: Chat, mentioned: bool) -> Inbound {
        Inbound {
            channel: "irc",
            account: "main".into(),
            message_id: "m".into(),
            peer: peer.into(),
            peer_mask: format!("{peer}!u@host.example"),
            display: peer.into(),
            chat,
            text: "hi".into(),
            mentioned,
            reply_target: None,
        }
    }

    fn policy(dm: DmPolicy, group: GroupPolicy, allow: &[&str]) -> Policy {
        Policy { dm, allow_from: allow.iter().map(|s| s.to_string()).collect(), group, require_mention: true }
    }

    #[test]
    fn direct_messages_follow_the_dm_policy() {
        let dir = tempfile::tempdir().unwrap();
        let state = ChannelState::new(Arc::new(Store::open(&dir.path().join("g.db")).unwrap()));
        let alice = inbound("alice", Chat::Dm, false);
        let p = policy(DmPolicy::Pairing, GroupPolicy::Allowlist, &[]);
        let Decision::SendPairingCode(code) = p.decide(&state, &alice).unwrap() else { panic!() };
        assert_eq!(p.decide(&state, &alice).unwrap(), Decision::Ignore("pairing waits for approval"));
        state.settle("irc", &code, true).unwrap();
        assert_eq!(p.decide(&state, &alice).unwrap(), Decision::Answer);

        let bob = inbound("bob", Chat::Dm, false);
        assert_eq!(
            policy(DmPolicy::Allowlist, GroupPolicy::Open, &[]).decide(&state, &bob).unwrap(),
            Decision::Ignore("sender not in the allowlist")
        );
        assert_eq!(
            policy(DmPolicy::Allowlist, GroupPolicy::Open, &["BOB"]).decide(&state, &bob).unwrap(),
            Decision::Answer
        );
        assert_eq!(
            policy(DmPolicy::Allowlist, GroupPolicy::Open, &["bob!*@*.example"])
                .decide(&state, &bob)
                .unwrap(),
            Decision::Answer
        );
        assert_eq!(
            policy(DmPolicy::Open, GroupPolicy::Open, &["*"]).decide(&state, &bob).unwrap(),
            Decision::Answer
        );
        assert_eq!(
            policy(DmPolicy::Disabled, GroupPolicy::Open, &["*"]).decide(&state, &bob).unwrap(),
            Decision::Ignore("direct messages are disabled")
        );
    }

    #[test]
    fn groups_answer_mentions_from_allowed_senders() {
        let dir = tempfile::tempdir().unwrap();
        let state = ChannelState::new(Arc::new(Store::open(&dir.path().join("g.db")).unwrap()));
        let group = || Chat::Group("#chan".into());
        let open = policy(DmPolicy::Pairing, GroupPolicy::Open, &[]);
        assert_eq!(
            open.decide(&state, &inbound("x", group(), false)).unwrap(),
            Decision::Ignore("not mentioned")
        );
        assert_eq!(open.decide(&state, &inbound("x", group(), true)).unwrap(), Decision::Answer);
        let listed = policy(DmPolicy::Pairing, GroupPolicy::Allowlist, &["carol"]);
        assert_eq!(
            listed.decide(&state, &inbound("x", group(), true)).unwrap(),
            Decision::Ignore("sender not in the allowlist")
        );
        assert_eq!(listed.decide(&state, &inbound("carol", group(), true)).unwrap(), Decision::Answer);
        assert!(state.pairings().unwrap().is_empty(), "groups never hand out pairing codes");
    }
}

/// `*` and `?` wildcards, without regard to case (IRC masks).
pub fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], t) || (!t.is_empty() && go(p, &t[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

#[cfg(test)]
mod glob_tests {
    use super::*;

    #[test]
    fn masks_match_with_wildcards() {
        assert!(glob("alice!*@*.example.org", "Alice!al@home.example.org"));
        assert!(!glob("alice!*@*.example.org", "alice!al@example.com"));
        assert!(glob("a?ice", "alice"));
    }
}
