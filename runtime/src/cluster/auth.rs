//! Who may talk to a cluster: the shared token, its interceptors, TLS settings and build identity.
//!
//! Every RPC carries `authorization: Bearer <token>`; the server's interceptor compares it in
//! constant time and answers UNAUTHENTICATED before any handler runs, so a call without it
//! changes nothing. The same interceptor reads the caller's node id (`rl-node`) into the
//! request's extensions. TLS (rustls, ring) is builder configuration, never handler code.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};
use tonic::{Request, Status};

use crate::error::{Result, RuntimeError};

/// The environment variable a driver or node reads the cluster token from.
pub const TOKEN_ENV: &str = "RL_CLUSTER_TOKEN";

/// The cluster's shared secret: 32 random bytes, written as 64 hex digits.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// A new random token (from the operating system's generator).
    pub fn generate() -> Self {
        let bytes: [u8; 32] = rand::random();
        Self(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// A token from its text; surrounding whitespace is ignored. Fails on an empty one.
    pub fn parse(text: &str) -> Result<Self> {
        let t = text.trim();
        if t.is_empty() || !t.chars().all(|c| c.is_ascii_graphic()) {
            return Err(RuntimeError::Unauthenticated("the cluster token is empty or not printable ASCII".into()));
        }
        Ok(Self(t.to_string()))
    }

    /// Reads a token file.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| RuntimeError::Cluster(format!("cannot read the cluster token {}: {e}", path.display())))?;
        Self::parse(&text)
    }

    /// Writes the token to `path` with mode 0600 (owner read/write only), replacing any file.
    pub fn write(&self, path: &Path) -> Result<()> {
        let fail = |e: std::io::Error| RuntimeError::Cluster(format!("cannot write {}: {e}", path.display()));
        let _ = std::fs::remove_file(path);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options.open(path).map_err(fail)?;
        f.write_all(self.0.as_bytes()).map_err(fail)?;
        f.write_all(b"\n").map_err(fail)
    }

    /// The token's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // Keep the compiler from short-circuiting the fold.
    std::hint::black_box(diff) == 0
}

/// The id of the node that made a request, as its `rl-node` header says (0 if it has none yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller(pub u32);

/// The server side: refuses requests without the token, records the caller's node id.
#[derive(Clone)]
pub(crate) struct CheckToken {
    expected: String,
}

impl CheckToken {
    pub(crate) fn new(token: &Token) -> Self {
        Self { expected: format!("Bearer {}", token.as_str()) }
    }
}

impl Interceptor for CheckToken {
    fn call(&mut self, mut req: Request<()>) -> std::result::Result<Request<()>, Status> {
        let given = req.metadata().get("authorization").map(|v| v.as_bytes()).unwrap_or_default();
        if !constant_time_eq(given, self.expected.as_bytes()) {
            return Err(Status::unauthenticated("missing or wrong cluster token"));
        }
        let caller = req.metadata().get("rl-node").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
        req.extensions_mut().insert(Caller(caller.unwrap_or(0)));
        Ok(req)
    }
}

/// The client side: adds the token and this node's id to every request.
#[derive(Clone)]
pub(crate) struct AddToken {
    header: MetadataValue<tonic::metadata::Ascii>,
    node: MetadataValue<tonic::metadata::Ascii>,
}

impl AddToken {
    pub(crate) fn new(token: &Token, node: u32) -> Result<Self> {
        let header = format!("Bearer {}", token.as_str())
            .parse()
            .map_err(|_| RuntimeError::Unauthenticated("the cluster token is not a valid header value".into()))?;
        Ok(Self { header, node: node.to_string().parse().expect("digits are a valid header value") })
    }
}

impl Interceptor for AddToken {
    fn call(&mut self, mut req: Request<()>) -> std::result::Result<Request<()>, Status> {
        req.metadata_mut().insert("authorization", self.header.clone());
        req.metadata_mut().insert("rl-node", self.node.clone());
        Ok(req)
    }
}

/// TLS for every connection of a node: its identity as a server, the CA it trusts as a client,
/// and whether it demands client certificates (mutual TLS).
///
/// Like Ray's `RAY_USE_TLS` setup, one certificate can serve a whole cluster: each process
/// presents it as server and, with `require_client_cert`, as client.
#[derive(Clone, Debug)]
pub struct TlsConfig {
    /// PEM certificate chain this node presents.
    pub cert_pem: Vec<u8>,
    /// PEM private key of `cert_pem`.
    pub key_pem: Vec<u8>,
    /// PEM CA certificate that signed the cluster's certificates.
    pub ca_pem: Vec<u8>,
    /// The name the certificates carry, checked by clients (default `localhost`).
    pub domain: String,
    /// Demand a certificate signed by `ca_pem` from every client.
    pub require_client_cert: bool,
}

impl TlsConfig {
    /// Reads the PEM files; the domain defaults to `localhost`.
    pub fn from_files(cert: &Path, key: &Path, ca: &Path, require_client_cert: bool) -> Result<Self> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|e| RuntimeError::Cluster(format!("cannot read TLS file {}: {e}", p.display())))
        };
        Ok(Self {
            cert_pem: read(cert)?,
            key_pem: read(key)?,
            ca_pem: read(ca)?,
            domain: "localhost".into(),
            require_client_cert,
        })
    }

    pub(crate) fn server(&self) -> ServerTlsConfig {
        let config = ServerTlsConfig::new().identity(Identity::from_pem(&self.cert_pem, &self.key_pem));
        if self.require_client_cert { config.client_ca_root(Certificate::from_pem(&self.ca_pem)) } else { config }
    }

    pub(crate) fn client(&self) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .domain_name(self.domain.clone())
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
    }
}

/// The environment variable that declares a process's build (see [`build_id`]).
pub const BUILD_ENV: &str = "RL_BUILD_ID";

/// This binary's build: package version plus a hash of the executable's bytes, and its path.
///
/// Every process of a cluster must run the same build, since actor types are found by name and
/// messages are decoded by layout. A custom-env binary that calls the library's `main()` is its
/// own build, distinct from the stock `rl`.
///
/// The environment variable [`BUILD_ENV`] replaces the hash: programs built together from one
/// source tree that register the same actor types (a test harness driving `rl` nodes, a launcher
/// wrapping `rl`) can declare themselves one build. Mismatched layouts then fail at decoding.
pub fn build_id() -> &'static str {
    static BUILD: OnceLock<String> = OnceLock::new();
    BUILD.get_or_init(|| {
        if let Some(declared) = std::env::var(BUILD_ENV).ok().filter(|s| !s.trim().is_empty()) {
            return declared_build(&declared);
        }
        let exe = std::env::current_exe().ok();
        // On Linux /proc/self/exe is this process's image even after the file was replaced
        // (a rebuild or an upgrade while the cluster runs).
        let image = if cfg!(target_os = "linux") { Some(PathBuf::from("/proc/self/exe")) } else { exe.clone() };
        let hash = image.and_then(|p| std::fs::read(p).ok()).map_or(0, |bytes| hash64(&bytes));
        let path = exe.map(|p| p.display().to_string()).unwrap_or_else(|| "unknown executable".into());
        format!("{} {} #{hash:016x} ({path})", env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
    })
}

/// The build id of a process that declares itself build `declared` (what [`BUILD_ENV`] does).
pub fn declared_build(declared: &str) -> String {
    format!("{} {} #{} (declared by {BUILD_ENV})", env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"), declared.trim())
}

/// The part of a build id that must match: everything before the executable's path.
pub(crate) fn build_key(build: &str) -> &str {
    build.split(" (").next().unwrap_or(build)
}

/// A fast 64-bit hash of `bytes` (word-wise multiply-xor; an identity check, not a MAC).
fn hash64(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h: u64 = bytes.len() as u64 ^ K;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let v = u64::from_le_bytes(w.try_into().expect("8 bytes"));
        h = (h ^ v).wrapping_mul(K).rotate_left(29);
    }
    for &b in words.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(K);
    }
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole_and_parse_trimmed() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        let t = Token::generate();
        assert_eq!(t.as_str().len(), 64);
        assert_ne!(t, Token::generate());
        assert_eq!(Token::parse(&format!("  {}\n", t.as_str())).unwrap(), t);
        assert!(Token::parse(" \n").is_err());
    }

    #[test]
    fn token_files_are_private() {
        let dir = std::env::temp_dir().join(format!("rl-token-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        let t = Token::generate();
        t.write(&path).unwrap();
        assert_eq!(Token::read(&path).unwrap(), t);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_interceptor_refuses_a_wrong_token_and_records_the_caller() {
        let token = Token::generate();
        let mut check = CheckToken::new(&token);
        assert_eq!(check.call(Request::new(())).unwrap_err().code(), tonic::Code::Unauthenticated);
        let mut wrong = AddToken::new(&Token::generate(), 3).unwrap();
        let req = wrong.call(Request::new(())).unwrap();
        assert_eq!(check.call(req).unwrap_err().code(), tonic::Code::Unauthenticated);
        let mut right = AddToken::new(&token, 3).unwrap();
        let req = check.call(right.call(Request::new(())).unwrap()).unwrap();
        assert_eq!(req.extensions().get::<Caller>(), Some(&Caller(3)));
    }

    /// The interceptor meets any header values a client can send: only the exact token passes,
    /// and a caller id that does not parse is node 0.
    #[test]
    fn fuzz_token_interceptor() {
        use proptest::prelude::*;

        use crate::fuzz_harness;
        let token = Token::parse("s3cret-token").unwrap();
        let header = prop_oneof![
            Just(None),
            Just(Some("Bearer s3cret-token".to_string())),
            "[ -~]{0,40}".prop_map(Some),
            "Bearer [ -~]{0,16}".prop_map(Some),
        ];
        let node = prop_oneof![Just(None), "[0-9]{1,12}".prop_map(Some), "[ -~]{0,12}".prop_map(Some)];
        fuzz_harness::run("token_interceptor", (header, node), |(header, node)| {
            let mut req = Request::new(());
            for (key, value) in [("authorization", &header), ("rl-node", &node)] {
                if let Some(v) = value.as_deref().and_then(|v| MetadataValue::try_from(v).ok()) {
                    req.metadata_mut().insert(key, v);
                }
            }
            let passed = CheckToken::new(&token).call(req);
            let right = header.as_deref().map(str::trim) == Some("Bearer s3cret-token");
            match passed {
                Ok(req) => {
                    assert!(right, "{header:?} passed");
                    let caller = req.extensions().get::<Caller>().unwrap().0;
                    let parsed = node.as_deref().and_then(|n| n.trim().parse::<u32>().ok()).unwrap_or(0);
                    assert!(caller == parsed || caller == 0, "{node:?} gave {caller}");
                }
                Err(status) => assert_eq!(status.code(), tonic::Code::Unauthenticated),
            }
        });
        fuzz_harness::run("token_parse", "(?s).{0,80}", |text| {
            if let Ok(t) = Token::parse(&text) {
                assert!(!t.as_str().is_empty() && t.as_str().chars().all(|c| c.is_ascii_graphic()));
                assert!(AddToken::new(&t, 1).is_ok());
            }
        });
    }

    #[test]
    fn build_ids_differ_with_the_bytes() {
        assert_ne!(hash64(b"abcdefgh1"), hash64(b"abcdefgh2"));
        assert_eq!(build_key("rl-runtime 0.1.0 #00ff (/x/rl)"), "rl-runtime 0.1.0 #00ff");
        assert!(build_id().starts_with("rl-runtime "));
    }
}
