//! The policy, pure: who a caller is ([`Identity`]) and the config give
//! what it may do ([`Grants`]). No I/O, no clock, no crypto: everything
//! here is a table lookup, and tested as one.

use std::collections::BTreeMap;
use std::fmt;

use tend_config::access::{ADMIN_ROLE, AccessConfig, Right, Scope, Secret, UnixSubject};
use tend_config::supervisord::Auth;
use tend_core::Name;

/// Who is asking, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// The program itself: a request that came through no socket (an
    /// embedder's own call, a test).
    Internal,
    /// A peer of the Unix socket, by its kernel credentials.
    Unix {
        /// Its user id.
        uid: u32,
        /// Its primary and supplementary group ids.
        gids: Vec<u32>,
        /// Its user name, when the uid has one.
        user: Option<String>,
    },
    /// An HTTP user of `[access.user.NAME]`.
    User(String),
    /// The `username` of the listener's own supervisord.conf section
    /// (`[unix_http_server]`, `[inet_http_server]`).
    ListenerUser(String),
    /// A bearer token of `[access.token.NAME]`.
    Token(String),
    /// A client that gave no credentials on a listener that needs none.
    Anonymous,
}

impl Identity {
    /// A peer of the Unix socket, its user name looked up (once per uid: a
    /// name service may be slow, and the name is only for messages).
    pub fn unix(uid: u32, gids: Vec<u32>) -> Identity {
        use std::collections::HashMap;
        use std::sync::{Mutex, OnceLock};
        static NAMES: OnceLock<Mutex<HashMap<u32, Option<String>>>> = OnceLock::new();
        let names = NAMES.get_or_init(|| Mutex::new(HashMap::new()));
        let known = names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&uid)
            .cloned();
        let user = known.unwrap_or_else(|| {
            let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                .ok()
                .flatten()
                .map(|u| u.name);
            let mut map = names.lock().unwrap_or_else(|p| p.into_inner());
            if map.len() >= 4096 {
                map.clear();
            }
            map.insert(uid, name.clone());
            name
        });
        Identity::Unix { uid, gids, user }
    }
}

impl fmt::Display for Identity {
    /// Who, as messages name it: `alice`, `token deploy`, `bob (uid 1001)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Internal => f.write_str("tend"),
            Identity::Unix {
                uid, user: Some(u), ..
            } => write!(f, "{u} (uid {uid})"),
            Identity::Unix { uid, .. } => write!(f, "uid {uid}"),
            Identity::User(u) | Identity::ListenerUser(u) => f.write_str(u),
            Identity::Token(t) => write!(f, "token {t}"),
            Identity::Anonymous => f.write_str("an anonymous client"),
        }
    }
}

/// What a right covers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Cover {
    #[default]
    Nothing,
    Some(Vec<Scope>),
    Everything,
}

impl Cover {
    fn add(&mut self, scopes: &[Scope]) {
        if scopes.iter().any(Scope::is_everything) {
            *self = Cover::Everything;
            return;
        }
        match self {
            Cover::Everything => {}
            Cover::Nothing if scopes.is_empty() => {}
            Cover::Nothing => *self = Cover::Some(scopes.to_vec()),
            Cover::Some(v) => v.extend(scopes.iter().cloned()),
        }
    }

    fn matches(&self, name: &Name, group: &Name) -> bool {
        match self {
            Cover::Nothing => false,
            Cover::Everything => true,
            Cover::Some(v) => v.iter().any(|s| s.pattern.matches(name, group)),
        }
    }
}

/// What one caller may do: each right over some processes, and whether it
/// may add a process with a new command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    covers: BTreeMap<Right, Cover>,
    spawn: bool,
    /// Where the grants come from, for `tend check --who` (role names, or
    /// the default that applied).
    pub sources: Vec<String>,
}

impl Grants {
    /// Nothing at all.
    pub fn none() -> Grants {
        Grants::default()
    }

    /// Every right over every process, adding commands included: root's.
    pub fn everything(source: &str) -> Grants {
        let mut g = Grants::none();
        for r in Right::ALL {
            g.covers.insert(r, Cover::Everything);
        }
        g.spawn = true;
        g.sources.push(source.to_string());
        g
    }

    /// What supervisord gives whoever can connect: view, logs, control,
    /// stdin, reload and metrics over every process.
    pub fn connector(source: &str) -> Grants {
        let mut g = Grants::none();
        for r in [
            Right::View,
            Right::Logs,
            Right::Control,
            Right::Stdin,
            Right::Reload,
            Right::Metrics,
        ] {
            g.covers.insert(r, Cover::Everything);
        }
        g.sources.push(source.to_string());
        g
    }

    /// What supervisord gives the holder of its username and password:
    /// everything except adding a process with a new command.
    pub fn supervisor(source: &str) -> Grants {
        let mut g = Grants::everything(source);
        g.spawn = false;
        g
    }

    /// Adds what `role` grants.
    fn add_role(&mut self, role: &Role) {
        for (right, scopes) in &role.grants {
            self.covers.entry(*right).or_default().add(scopes);
        }
        self.spawn |= role.spawn;
        self.sources.push(format!("role {}", role.name));
    }

    /// The cover of `right`: its own, or admin's (which implies every right).
    fn cover(&self, right: Right) -> impl Iterator<Item = &Cover> {
        [self.covers.get(&right), self.covers.get(&Right::Admin)]
            .into_iter()
            .flatten()
    }

    /// Whether `right` covers the process `name` of `group`.
    pub fn allows(&self, right: Right, name: &Name, group: &Name) -> bool {
        self.cover(right).any(|c| c.matches(name, group))
    }

    /// Whether `right` covers every process (what actions on the whole
    /// daemon need: shutdown, reload, the main log).
    pub fn allows_everything(&self, right: Right) -> bool {
        self.cover(right).any(|c| *c == Cover::Everything)
    }

    /// Whether it may add a process with a new command (`POST
    /// /v1/processes`): admin over every process, from a role or root.
    pub fn may_spawn(&self) -> bool {
        self.spawn && self.allows_everything(Right::Admin)
    }

    /// Whether nothing at all is granted.
    pub fn is_empty(&self) -> bool {
        self.covers.values().all(|c| *c == Cover::Nothing)
    }

    /// The patterns `right` covers, as written (`["*"]` for everything),
    /// admin's included.
    pub fn patterns(&self, right: Right) -> Vec<String> {
        if self.allows_everything(right) {
            return vec!["*".to_string()];
        }
        let mut out = Vec::new();
        for c in self.cover(right) {
            if let Cover::Some(v) = c {
                out.extend(v.iter().map(|s| s.text.clone()));
            }
        }
        out.dedup();
        out
    }
}

/// A role, ready to be granted.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Role {
    name: String,
    grants: BTreeMap<Right, Vec<Scope>>,
    /// Admin over every process here may add commands.
    spawn: bool,
}

/// Credentials a listener accepts, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Credential {
    pub(crate) name: String,
    pub(crate) secret: Secret,
    pub(crate) roles: Vec<String>,
}

/// The rules of one config, compiled: who may do what.
#[derive(Debug, Clone)]
pub struct Policy {
    configured: bool,
    roles: BTreeMap<String, Role>,
    pub(crate) users: Vec<Credential>,
    pub(crate) tokens: Vec<Credential>,
    /// Users who log in with a client certificate: (what names it, user).
    certificates: Vec<(String, String)>,
    /// Every user's roles, by user name.
    user_roles: BTreeMap<String, Vec<String>>,
    unix: Vec<(UnixSubject, Vec<String>)>,
    /// The listeners' own credentials (supervisord.conf), by door name.
    pub(crate) listeners: BTreeMap<String, Auth>,
    /// The daemon's own uid: like root, its admin.
    daemon_uid: u32,
}

impl Policy {
    /// The policy of `access`, with the listeners' own credentials
    /// (`(door, credentials)`, e.g. `("unix", ...)` and `("inet", ...)`), for
    /// a daemon running as `daemon_uid`.
    pub fn new(
        access: &AccessConfig,
        listeners: impl IntoIterator<Item = (String, Auth)>,
        daemon_uid: u32,
    ) -> Policy {
        let mut roles = BTreeMap::new();
        roles.insert(
            ADMIN_ROLE.to_string(),
            Role {
                name: ADMIN_ROLE.to_string(),
                grants: Right::ALL
                    .into_iter()
                    .map(|r| {
                        let all = Scope::parse("*").map(|s| vec![s]).unwrap_or_default();
                        (r, all)
                    })
                    .collect(),
                spawn: true,
            },
        );
        for r in &access.roles {
            roles.insert(
                r.name.clone(),
                Role {
                    name: r.name.clone(),
                    grants: r.grants.clone(),
                    spawn: r
                        .grants
                        .get(&Right::Admin)
                        .is_some_and(|s| s.iter().any(Scope::is_everything)),
                },
            );
        }
        let cred = |name: &String, secret: &Secret, roles: &Vec<String>| Credential {
            name: name.clone(),
            secret: secret.clone(),
            roles: roles.clone(),
        };
        Policy {
            configured: access.configured,
            roles,
            users: access
                .users
                .iter()
                .filter_map(|u| u.password.as_ref().map(|p| cred(&u.name, p, &u.roles)))
                .collect(),
            certificates: access
                .users
                .iter()
                .flat_map(|u| u.certificates.iter().map(|c| (c.clone(), u.name.clone())))
                .collect(),
            user_roles: access
                .users
                .iter()
                .map(|u| (u.name.clone(), u.roles.clone()))
                .collect(),
            tokens: access
                .tokens
                .iter()
                .map(|t| cred(&t.name, &t.hash, &t.roles))
                .collect(),
            unix: access
                .unix
                .iter()
                .map(|r| (r.subject.clone(), r.roles.clone()))
                .collect(),
            listeners: listeners.into_iter().collect(),
            daemon_uid,
        }
    }

    /// The policy of a daemon without a config file: supervisord's defaults.
    pub fn unconfigured(daemon_uid: u32) -> Policy {
        Policy::new(&AccessConfig::default(), [], daemon_uid)
    }

    /// Whether the config has access rules (deny by default) or not
    /// (supervisord's rights).
    pub fn is_configured(&self) -> bool {
        self.configured
    }

    /// Whether any credentials exist that a client could present (then a
    /// client without any, and without rights, is asked for them: 401).
    pub fn has_credentials(&self) -> bool {
        !self.users.is_empty() || !self.tokens.is_empty() || !self.listeners.is_empty()
    }

    /// Whether credentials of this kind could be right on `door` at all
    /// (`bearer`: a token; otherwise Basic: a user, or the door's own). A
    /// header none could match is ignored, as supervisord ignores the
    /// `Authorization` of a client when it has no credentials to check.
    pub fn checks(&self, door: &str, bearer: bool) -> bool {
        if bearer {
            !self.tokens.is_empty()
        } else {
            !self.users.is_empty() || self.listeners.contains_key(door)
        }
    }

    /// Whether a caller on `door` could give credentials at all.
    pub fn has_credentials_for(&self, door: &str) -> bool {
        !self.users.is_empty() || !self.tokens.is_empty() || self.listeners.contains_key(door)
    }

    /// The listener `door`'s own credentials, if it has some: then every
    /// request on it must authenticate.
    pub fn listener_auth(&self, door: &str) -> Option<&Auth> {
        self.listeners.get(door)
    }

    /// The user a verified client certificate is, by the `certificate` of
    /// `[access.user.NAME]`: the first user, in file order, with an entry
    /// that names it (its common name, a DNS name or URI, or its SHA-256).
    pub fn certificate_user(&self, client: &crate::listen::TlsClient) -> Option<&str> {
        let names = || {
            client
                .common_name
                .iter()
                .chain(&client.dns_names)
                .chain(&client.uris)
                .map(String::as_str)
        };
        self.certificates
            .iter()
            .find(|(entry, _)| {
                tend_config::access::certificate_matches(entry, names(), &client.sha256)
            })
            .map(|(_, user)| user.as_str())
    }

    /// The uid that is admin by default besides root.
    pub fn daemon_uid(&self) -> u32 {
        self.daemon_uid
    }

    /// Whether `uid` is root or the daemon's own user.
    pub fn is_owner(&self, uid: u32) -> bool {
        uid == 0 || uid == self.daemon_uid
    }

    fn with_roles<'a>(&self, mut g: Grants, roles: impl IntoIterator<Item = &'a String>) -> Grants {
        for name in roles {
            if let Some(role) = self.roles.get(name) {
                g.add_role(role);
            }
        }
        g
    }

    /// What `who` may do.
    pub fn grants(&self, who: &Identity) -> Grants {
        match who {
            Identity::Internal => Grants::everything("the daemon itself"),
            Identity::ListenerUser(_) => Grants::supervisor("the listener's username and password"),
            Identity::User(name) => self.with_roles(
                Grants::none(),
                self.user_roles.get(name).into_iter().flatten(),
            ),
            Identity::Token(name) => self.with_roles(
                Grants::none(),
                self.tokens
                    .iter()
                    .filter(|t| &t.name == name)
                    .flat_map(|t| &t.roles),
            ),
            Identity::Anonymous if self.configured => Grants::none(),
            Identity::Anonymous => {
                Grants::connector("supervisord's default for a listener without credentials")
            }
            Identity::Unix { uid, gids, .. } => self.unix_grants(*uid, gids),
        }
    }

    fn unix_grants(&self, uid: u32, gids: &[u32]) -> Grants {
        let own: Vec<&String> = self
            .unix
            .iter()
            .filter(|(s, _)| matches!(s, UnixSubject::User { uid: u, .. } if *u == uid))
            .flat_map(|(_, r)| r)
            .collect();
        let by_group: Vec<&String> = self
            .unix
            .iter()
            .filter(|(s, _)| matches!(s, UnixSubject::Group { gid, .. } if gids.contains(gid)))
            .flat_map(|(_, r)| r)
            .collect();
        // Root and the daemon's own user are admin, unless a rule names
        // them: then they get what the rules say.
        if self.is_owner(uid) && own.is_empty() {
            return Grants::everything(if uid == 0 {
                "root on the socket"
            } else {
                "the daemon's own user on the socket"
            });
        }
        if !self.configured {
            return Grants::connector(
                "supervisord's default for whoever the socket's file mode lets connect",
            );
        }
        self.with_roles(Grants::none(), own.into_iter().chain(by_group))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Name {
        Name::new(s).expect("name")
    }

    const DAEMON_UID: u32 = 500;

    fn configured() -> Policy {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tend.toml");
        let text = r#"
[access.role.operator]
view = ["*"]
logs = ["web-*"]
control = ["web-*", "front:*"]

[access.role.deployer]
admin = ["web-*"]

[access.role.root-like]
admin = ["all"]

[access.user.alice]
password = "{PLAIN}a"
roles = ["operator"]

[access.user.carol]
password = "{PLAIN}c"
roles = ["operator", "deployer"]

[access.token.deploy]
hash = "{PLAIN}t"
roles = ["root-like"]

[access.unix]
"gid:2000" = ["operator"]
"uid:0" = ["operator"]
"#;
        std::fs::write(&path, text).expect("write");
        let config = tend_config::native::load(&path).expect("valid");
        Policy::new(
            &config.access,
            [(
                "inet".to_string(),
                Auth::Plain {
                    username: "admin".into(),
                    password: "x".into(),
                },
            )],
            DAEMON_UID,
        )
    }

    fn unix(uid: u32, gids: &[u32]) -> Identity {
        Identity::Unix {
            uid,
            gids: gids.to_vec(),
            user: None,
        }
    }

    #[test]
    fn without_access_the_rights_are_supervisords() {
        let p = Policy::unconfigured(DAEMON_UID);
        let (web, db) = (n("web"), n("db"));
        for owner in [unix(0, &[0]), unix(DAEMON_UID, &[]), Identity::Internal] {
            let g = p.grants(&owner);
            assert!(g.may_spawn(), "{owner:?}");
            assert!(Right::ALL.iter().all(|r| g.allows_everything(*r)));
        }
        // Whoever the socket lets in, and a listener without credentials.
        for other in [unix(65534, &[65534]), Identity::Anonymous] {
            let g = p.grants(&other);
            for r in [
                Right::View,
                Right::Logs,
                Right::Control,
                Right::Stdin,
                Right::Reload,
            ] {
                assert!(
                    g.allows(r, &db, &db) && g.allows_everything(r),
                    "{other:?} {r}"
                );
            }
            assert!(!g.allows(Right::Admin, &web, &web), "{other:?}");
            assert!(!g.may_spawn(), "{other:?}");
        }
        // The holder of a supervisord.conf's username and password.
        let g = p.grants(&Identity::ListenerUser("admin".into()));
        assert!(g.allows_everything(Right::Admin));
        assert!(!g.may_spawn(), "adding a command is root's alone");
    }

    #[test]
    fn roles_grant_verbs_over_patterns() {
        let p = configured();
        let (web1, db, front, api) = (n("web-1"), n("db"), n("front"), n("api"));
        let alice = p.grants(&Identity::User("alice".into()));
        assert!(alice.allows(Right::View, &db, &db));
        assert!(alice.allows(Right::Control, &web1, &web1));
        assert!(
            alice.allows(Right::Control, &api, &front),
            "GROUP:* pattern"
        );
        assert!(!alice.allows(Right::Control, &db, &db));
        assert!(!alice.allows(Right::Logs, &db, &db));
        assert!(
            !alice.allows(Right::Stdin, &web1, &web1),
            "not granted: denied"
        );
        assert!(!alice.allows_everything(Right::Control));
        assert!(alice.allows_everything(Right::View));
        assert!(!alice.allows_everything(Right::Admin) && !alice.may_spawn());
        assert_eq!(alice.patterns(Right::Control), ["web-*", "front:*"]);

        // Admin over some processes implies every right over them, but
        // never adding commands.
        let carol = p.grants(&Identity::User("carol".into()));
        assert!(carol.allows(Right::Stdin, &web1, &web1));
        assert!(carol.allows(Right::Admin, &web1, &web1));
        assert!(!carol.allows(Right::Admin, &db, &db));
        assert!(!carol.may_spawn());

        // admin = ["all"] is root's: it may add commands.
        let deploy = p.grants(&Identity::Token("deploy".into()));
        assert!(deploy.may_spawn());

        // Unknown names, anonymous clients: nothing.
        assert!(p.grants(&Identity::User("mallory".into())).is_empty());
        assert!(p.grants(&Identity::Token("nope".into())).is_empty());
        assert!(p.grants(&Identity::Anonymous).is_empty());
        // The listener's own credentials: supervisord's, as before.
        let admin = p.grants(&Identity::ListenerUser("admin".into()));
        assert!(admin.allows_everything(Right::Admin) && !admin.may_spawn());
    }

    #[test]
    fn unix_peers_by_user_and_group() {
        let p = configured();
        let (web1, db) = (n("web-1"), n("db"));
        // A member of gid 2000 (primary or supplementary).
        for gids in [&[2000][..], &[100, 2000]] {
            let g = p.grants(&unix(1001, gids));
            assert!(g.allows(Right::Control, &web1, &web1));
            assert!(!g.allows(Right::Control, &db, &db));
            assert!(!g.allows_everything(Right::Admin));
        }
        // Anyone else on the socket: nothing, whatever its mode.
        assert!(p.grants(&unix(1002, &[1002])).is_empty());
        // Root is named by a rule: it gets what the rule says.
        let root = p.grants(&unix(0, &[0]));
        assert!(!root.may_spawn() && !root.allows(Right::Control, &db, &db));
        // The daemon's own user is not named: admin.
        assert!(p.grants(&unix(DAEMON_UID, &[DAEMON_UID])).may_spawn());
    }

    #[test]
    fn identities_read_well() {
        assert_eq!(Identity::User("alice".into()).to_string(), "alice");
        assert_eq!(Identity::Token("deploy".into()).to_string(), "token deploy");
        let bob = Identity::Unix {
            uid: 1001,
            gids: vec![],
            user: Some("bob".into()),
        };
        assert_eq!(bob.to_string(), "bob (uid 1001)");
        assert_eq!(unix(7, &[]).to_string(), "uid 7");
    }
}
