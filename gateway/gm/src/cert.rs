//! SM2 certificate identity: a client certificate (SM3withSM2, e.g. from a UKey) checked against
//! configured SM2 CA certificates with the right distinguishing id, and mapped to an identity.
//! The certificate reaches the gateway from a TLCP terminator it trusts, in a header (PEM,
//! optionally URL-encoded as nginx's `$ssl_client_escaped_cert`).

use crate::{GmError, SigEncoding, Sm2Public};
use der::{Decode, Encode};
use x509_cert::Certificate;

/// SM2 with SM3 (GM/T 0006: 1.2.156.10197.1.501).
const SM2_WITH_SM3: &str = "1.2.156.10197.1.501";

/// Why a client certificate was refused (for logs; clients see a stable code only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertError {
    Parse(String),
    /// Not signed with SM3withSM2.
    Algorithm(String),
    /// No configured CA has this issuer.
    UnknownIssuer,
    /// The CA's signature does not verify (wrong CA key or distinguishing id, or tampering).
    Signature,
    /// Outside its validity period.
    Expired,
    NotYetValid,
    /// No subject common name to use as the user id.
    NoSubject,
    /// A CA certificate (basicConstraints CA:TRUE) is not a client identity.
    NotEndEntity,
    /// Its key usages exclude signing or client authentication (the encryption certificate of a
    /// dual-certificate UKey, a server certificate).
    NotForClientAuth(&'static str),
    /// Listed in its CA's revocation list.
    Revoked,
    /// Its CA's revocation list is past its next update: revocation cannot be known.
    CrlExpired,
}

impl std::fmt::Display for CertError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CertError::Parse(s) => write!(f, "not a certificate: {s}"),
            CertError::Algorithm(s) => write!(f, "not signed with SM3withSM2 ({s})"),
            CertError::UnknownIssuer => f.write_str("issued by no configured CA"),
            CertError::Signature => f.write_str("the CA signature does not verify"),
            CertError::Expired => f.write_str("expired"),
            CertError::NotYetValid => f.write_str("not yet valid"),
            CertError::NoSubject => f.write_str("no subject CN"),
            CertError::NotEndEntity => f.write_str("a CA certificate, not a client's"),
            CertError::NotForClientAuth(why) => write!(f, "not a client signing certificate: {why}"),
            CertError::Revoked => f.write_str("revoked (listed in its CA's CRL)"),
            CertError::CrlExpired => f.write_str(
                "its CA's CRL is past its next update; load a fresh one ([gm] client_crl_files, then reload)",
            ),
        }
    }
}

/// Who a verified certificate names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertIdentity {
    /// Subject CN: the user id.
    pub cn: String,
    /// Subject O, if any (the department, by convention).
    pub o: Option<String>,
    /// Subject OU, if any.
    pub ou: Option<String>,
    /// Serial number, hex.
    pub serial: String,
    /// The CA's subject CN.
    pub issuer_cn: String,
}

/// A trusted SM2 CA.
#[derive(Debug, Clone)]
pub struct Sm2Ca {
    subject_der: Vec<u8>,
    key: Sm2Public,
    cn: String,
}

fn parse_cert(bytes: &[u8]) -> Result<Certificate, CertError> {
    let text = std::str::from_utf8(bytes).ok().map(str::trim);
    match text {
        Some(t) if t.contains("-----BEGIN") => {
            use der::DecodePem;
            // Proxies that cannot put newlines in a header use tabs (nginx $ssl_client_cert).
            let pem = t.replace('\t', "\n");
            Certificate::from_pem(pem.as_bytes()).map_err(|e| CertError::Parse(e.to_string()))
        }
        Some(t) if t.contains("%2D%2D") || t.contains("%2d%2d") => {
            let decoded = percent_decode(t);
            if decoded.contains("%2D%2D") || decoded.contains("%2d%2d") {
                return Err(CertError::Parse("encoded more than once".into()));
            }
            parse_cert(decoded.as_bytes())
        }
        Some(t)
            if !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b)) =>
        {
            use base64::Engine;
            let der = base64::engine::general_purpose::STANDARD
                .decode(t)
                .map_err(|e| CertError::Parse(e.to_string()))?;
            Certificate::from_der(&der).map_err(|e| CertError::Parse(e.to_string()))
        }
        _ => Certificate::from_der(bytes).map_err(|e| CertError::Parse(e.to_string())),
    }
}

fn percent_decode(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn cn_of(name: &x509_cert::name::Name) -> Option<String> {
    name.common_name().ok().flatten().map(String::from)
}

fn spki_key(cert: &Certificate, distid: &str) -> Result<Sm2Public, GmError> {
    let spki = cert
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| GmError::Key(e.to_string()))?;
    Sm2Public::from_der(distid, &spki)
}

impl Sm2Ca {
    /// A CA certificate (PEM or DER); `distid` is the id the CA signs with.
    pub fn new(cert: &[u8], distid: &str) -> Result<Self, String> {
        let c = parse_cert(cert).map_err(|e| e.to_string())?;
        let key = spki_key(&c, distid).map_err(|e| format!("CA key: {e}"))?;
        let subject_der = c
            .tbs_certificate()
            .subject()
            .to_der()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            subject_der,
            key,
            cn: cn_of(c.tbs_certificate().subject()).unwrap_or_default(),
        })
    }

    pub fn cn(&self) -> &str {
        &self.cn
    }
}

/// RFC 5280 4.2.1.3 and 4.2.1.12: when a certificate states its key usages, identifying a client
/// must be among them. A UKey holds two certificates (GM/T 0015): the signing one
/// (digitalSignature) identifies its holder; the encryption one (keyEncipherment only) does not.
fn usable_for_client_auth(exts: &[x509_cert::ext::Extension]) -> Result<(), CertError> {
    use x509_cert::ext::pkix::{ExtendedKeyUsage, KeyUsage, KeyUsages};
    for e in exts {
        match e.extn_id.to_string().as_str() {
            "2.5.29.15" => {
                let ku = KeyUsage::from_der(e.extn_value.as_bytes())
                    .map_err(|e| CertError::Parse(format!("keyUsage: {e}")))?;
                if !ku.0.contains(KeyUsages::DigitalSignature) {
                    return Err(CertError::NotForClientAuth(
                        "its keyUsage lacks digitalSignature (an encryption certificate?)",
                    ));
                }
            }
            "2.5.29.37" => {
                let eku = ExtendedKeyUsage::from_der(e.extn_value.as_bytes())
                    .map_err(|e| CertError::Parse(format!("extKeyUsage: {e}")))?;
                let ok = eku.0.iter().any(|o| {
                    let o = o.to_string();
                    o == "1.3.6.1.5.5.7.3.2" || o == "2.5.29.37.0"
                });
                if !ok {
                    return Err(CertError::NotForClientAuth(
                        "its extendedKeyUsage lacks clientAuth",
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// A certificate revocation list of one of the client CAs, its signature checked.
#[derive(Debug, Clone)]
pub struct Crl {
    issuer_der: Vec<u8>,
    /// The CA's subject CN (for messages).
    pub issuer_cn: String,
    /// Unix seconds.
    pub this_update: u64,
    /// Unix seconds; `None`: the CRL names no next update.
    pub next_update: Option<u64>,
    /// Serial numbers (DER integer contents) of the revoked certificates, sorted.
    revoked: Vec<Vec<u8>>,
}

impl Crl {
    /// A CRL (PEM or DER) signed with SM3withSM2 by one of `cas`.
    pub fn new(bytes: &[u8], cas: &[Sm2Ca]) -> Result<Crl, String> {
        use x509_cert::crl::CertificateList;
        let crl: CertificateList = match std::str::from_utf8(bytes).ok().map(str::trim) {
            Some(t) if t.contains("-----BEGIN") => {
                use der::DecodePem;
                CertificateList::from_pem(t.as_bytes())
            }
            _ => CertificateList::from_der(bytes),
        }
        .map_err(|e| format!("not a CRL: {e}"))?;
        let alg = crl.signature_algorithm.oid.to_string();
        if alg != SM2_WITH_SM3 {
            return Err(format!("not signed with SM3withSM2 ({alg})"));
        }
        let tbs = &crl.tbs_cert_list;
        let issuer_der = tbs.issuer.to_der().map_err(|e| e.to_string())?;
        let ca = cas
            .iter()
            .find(|ca| ca.subject_der == issuer_der)
            .ok_or("issued by none of client_ca_files")?;
        let tbs_der = tbs.to_der().map_err(|e| e.to_string())?;
        ca.key
            .verify(&tbs_der, crl.signature.raw_bytes(), SigEncoding::Der)
            .map_err(|_| "its signature does not verify with the CA's key and distinguishing id")?;
        let mut revoked: Vec<Vec<u8>> = tbs
            .revoked_certificates
            .iter()
            .flatten()
            .map(|r| r.serial_number.as_bytes().to_vec())
            .collect();
        revoked.sort_unstable();
        Ok(Crl {
            issuer_der,
            issuer_cn: ca.cn.clone(),
            this_update: tbs.this_update.to_unix_duration().as_secs(),
            next_update: tbs.next_update.map(|t| t.to_unix_duration().as_secs()),
            revoked,
        })
    }

    /// How many certificates it revokes.
    pub fn len(&self) -> usize {
        self.revoked.len()
    }

    pub fn is_empty(&self) -> bool {
        self.revoked.is_empty()
    }
}

/// Verifies `cert` (PEM, URL-encoded PEM or DER) against `cas` at `now_unix` and returns the
/// identity it names. Where `crls` holds a list of the certificate's CA, a listed certificate is
/// refused, and so is every certificate of that CA once the list is past its next update (fail
/// closed: whether it was revoked cannot be known).
pub fn verify_client_cert(
    cas: &[Sm2Ca],
    crls: &[Crl],
    cert: &[u8],
    now_unix: u64,
) -> Result<CertIdentity, CertError> {
    let c = parse_cert(cert)?;
    let tbs = c.tbs_certificate();
    let alg = c.signature_algorithm().oid.to_string();
    if alg != SM2_WITH_SM3 {
        return Err(CertError::Algorithm(alg));
    }
    let issuer = tbs
        .issuer()
        .to_der()
        .map_err(|e| CertError::Parse(e.to_string()))?;
    let ca = cas
        .iter()
        .find(|ca| ca.subject_der == issuer)
        .ok_or(CertError::UnknownIssuer)?;
    let tbs_der = tbs.to_der().map_err(|e| CertError::Parse(e.to_string()))?;
    let sig = c.signature().raw_bytes();
    ca.key
        .verify(&tbs_der, sig, SigEncoding::Der)
        .map_err(|_| CertError::Signature)?;
    let v = tbs.validity();
    if now_unix < v.not_before.to_unix_duration().as_secs() {
        return Err(CertError::NotYetValid);
    }
    if now_unix > v.not_after.to_unix_duration().as_secs() {
        return Err(CertError::Expired);
    }
    let is_ca = tbs.extensions().is_some_and(|exts| {
        exts.iter().any(|e| {
            e.extn_id.to_string() == "2.5.29.19"
                && x509_cert::ext::pkix::BasicConstraints::from_der(e.extn_value.as_bytes())
                    .is_ok_and(|b| b.ca)
        })
    });
    if is_ca {
        return Err(CertError::NotEndEntity);
    }
    usable_for_client_auth(tbs.extensions().map(|e| e.as_slice()).unwrap_or(&[]))?;
    let serial = tbs.serial_number().as_bytes();
    // The newest list of the CA counts (an older one may still be loaded during a changeover).
    let newest = crls
        .iter()
        .filter(|c| c.issuer_der == issuer)
        .max_by_key(|c| c.this_update);
    if let Some(crl) = newest {
        if crl.next_update.is_some_and(|n| now_unix > n) {
            return Err(CertError::CrlExpired);
        }
        if crl
            .revoked
            .binary_search_by(|r| r.as_slice().cmp(serial))
            .is_ok()
        {
            return Err(CertError::Revoked);
        }
    }
    let subject = tbs.subject();
    let cn = cn_of(subject)
        .filter(|c| !c.is_empty())
        .ok_or(CertError::NoSubject)?;
    Ok(CertIdentity {
        cn,
        o: subject.organization().ok().flatten().map(String::from),
        ou: subject.organization_unit().ok().flatten().map(String::from),
        serial: hex::encode(tbs.serial_number().as_bytes()),
        issuer_cn: ca.cn.clone(),
    })
}
