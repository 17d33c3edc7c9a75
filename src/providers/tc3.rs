//! Tencent Cloud API 3.0 request signing (TC3-HMAC-SHA256).

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

pub const ALGORITHM: &str = "TC3-HMAC-SHA256";

/// The content type every JSON request is sent and signed with, byte for byte.
pub const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// Everything that goes into one signature. `headers` are the signed headers as sent
/// (at least `content-type` and `host`); names and values are lower-cased for signing.
pub struct Tc3Request<'a> {
    pub secret_id: &'a str,
    pub secret_key: &'a str,
    /// `tts`, `asr`, `cvm`: the credential scope's service.
    pub service: &'a str,
    /// Unix seconds, also sent as `X-TC-Timestamp`.
    pub timestamp: i64,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

impl Tc3Request<'_> {
    /// `YYYY-MM-DD` of the timestamp in UTC; local time would break signatures near midnight.
    pub fn date(&self) -> String {
        let day = time::OffsetDateTime::from_unix_timestamp(self.timestamp)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
            .date();
        format!(
            "{:04}-{:02}-{:02}",
            day.year(),
            u8::from(day.month()),
            day.day()
        )
    }

    pub fn credential_scope(&self) -> String {
        format!("{}/{}/tc3_request", self.date(), self.service)
    }

    fn sorted_headers(&self) -> Vec<(String, String)> {
        let mut headers: Vec<(String, String)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_ascii_lowercase()))
            .collect();
        headers.sort();
        headers
    }

    pub fn signed_headers(&self) -> String {
        self.sorted_headers()
            .into_iter()
            .map(|(n, _)| n)
            .collect::<Vec<_>>()
            .join(";")
    }

    /// POST, URI `/`, no query string: the only shape aimake sends.
    pub fn canonical_request(&self) -> String {
        let headers: String = self
            .sorted_headers()
            .into_iter()
            .map(|(n, v)| format!("{n}:{v}\n"))
            .collect();
        format!(
            "POST\n/\n\n{headers}\n{}\n{}",
            self.signed_headers(),
            hex::encode(Sha256::digest(self.body))
        )
    }

    pub fn string_to_sign(&self) -> String {
        format!(
            "{ALGORITHM}\n{}\n{}\n{}",
            self.timestamp,
            self.credential_scope(),
            hex::encode(Sha256::digest(self.canonical_request().as_bytes()))
        )
    }

    /// The derived key: `HMAC(HMAC(HMAC("TC3" + key, date), service), "tc3_request")`.
    pub fn signing_key(&self) -> Vec<u8> {
        let date = hmac(
            format!("TC3{}", self.secret_key).as_bytes(),
            self.date().as_bytes(),
        );
        let service = hmac(&date, self.service.as_bytes());
        hmac(&service, b"tc3_request")
    }

    pub fn signature(&self) -> String {
        hex::encode(hmac(&self.signing_key(), self.string_to_sign().as_bytes()))
    }

    /// The `Authorization` header value.
    pub fn authorization(&self) -> String {
        format!(
            "{ALGORITHM} Credential={}/{}, SignedHeaders={}, Signature={}",
            self.secret_id,
            self.credential_scope(),
            self.signed_headers(),
            self.signature()
        )
    }
}

fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body of Tencent's published example, `\u` escapes kept as literal text.
    const CVM_BODY: &str =
        r#"{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}"#;
    const ID: &str = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE";
    const KEY: &str = "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE";

    fn cvm<'a>(id: &'a str, key: &'a str, headers: &'a [(&'a str, &'a str)]) -> Tc3Request<'a> {
        Tc3Request {
            secret_id: id,
            secret_key: key,
            service: "cvm",
            timestamp: 1551113065,
            headers,
            body: CVM_BODY.as_bytes(),
        }
    }

    const CVM_HEADERS: &[(&str, &str)] = &[
        ("Content-Type", JSON_CONTENT_TYPE),
        ("Host", "cvm.tencentcloudapi.com"),
    ];

    #[test]
    fn the_official_worked_example_is_reproduced_byte_for_byte() {
        let r = cvm(ID, KEY, CVM_HEADERS);
        assert_eq!(
            hex::encode(Sha256::digest(r.body)),
            "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
        );
        assert_eq!(
            r.canonical_request(),
            "POST\n/\n\ncontent-type:application/json; charset=utf-8\nhost:cvm.tencentcloudapi.com\n\ncontent-type;host\n35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
        );
        assert_eq!(
            hex::encode(Sha256::digest(r.canonical_request().as_bytes())),
            "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
        );
        assert_eq!(
            r.string_to_sign(),
            "TC3-HMAC-SHA256\n1551113065\n2019-02-25/cvm/tc3_request\n5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
        );
        let date = hmac(format!("TC3{KEY}").as_bytes(), b"2019-02-25");
        assert_eq!(
            hex::encode(&date),
            "d1308c81fe71cfd4e06437bbc067b2b8a3d2d8c0e375d547f15c41d5214b395a"
        );
        let service = hmac(&date, b"cvm");
        assert_eq!(
            hex::encode(&service),
            "3c7cb7c7795393edc14fd2e0e6434a518564b4504b88e94f5d11bf59ba3e7050"
        );
        assert_eq!(
            hex::encode(r.signing_key()),
            "ac658d5dde49e9bfdd14e04e062f66b05d9f637d44b8a8d845327d4a77f666b1"
        );
        assert_eq!(
            r.authorization(),
            "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/cvm/tc3_request, SignedHeaders=content-type;host, Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
        );
    }

    #[test]
    fn the_older_documented_key_pair_gives_its_documented_signature() {
        let r = cvm(
            "AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******",
            "Gu5t9xGARNpq86cd98joQYCN3*******",
            CVM_HEADERS,
        );
        assert_eq!(
            r.signature(),
            "2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c"
        );
    }

    #[test]
    fn a_text_to_voice_request_signs_as_computed_independently() {
        let body = br#"{"Text":"hello world","SessionId":"session-1234","VoiceType":101001,"Codec":"wav","SampleRate":16000,"PrimaryLanguage":2}"#;
        let r = Tc3Request {
            secret_id: ID,
            secret_key: KEY,
            service: "tts",
            timestamp: 1700000000,
            headers: &[
                ("content-type", JSON_CONTENT_TYPE),
                ("host", "tts.tencentcloudapi.com"),
            ],
            body,
        };
        assert_eq!(r.date(), "2023-11-14");
        assert_eq!(
            hex::encode(Sha256::digest(body)),
            "3eefea5cbf8f5d236e97e8c60ae4637a9d4ad637fca5770c53f91981de03d247"
        );
        assert_eq!(
            hex::encode(Sha256::digest(r.canonical_request().as_bytes())),
            "080202c0be9a0983ef10bce707dd23ed375fe86a7ec813886905aecd874f728f"
        );
        assert_eq!(
            r.signature(),
            "a6105ca9b06bd2094745fa78996dbc36153c2c427749f35988992272988234df"
        );
    }

    #[test]
    fn extra_signed_headers_are_sorted_and_their_values_lower_cased() {
        let headers = [
            ("X-TC-Action", "DescribeInstances"),
            ("Host", "cvm.tencentcloudapi.com"),
            ("Content-Type", JSON_CONTENT_TYPE),
        ];
        let r = cvm(ID, KEY, &headers);
        assert_eq!(r.signed_headers(), "content-type;host;x-tc-action");
        assert!(
            r.canonical_request()
                .contains("\nx-tc-action:describeinstances\n\n")
        );
        assert_eq!(
            hex::encode(Sha256::digest(r.canonical_request().as_bytes())),
            "7019a55be8395899b900fb5564e4200d984910f34794a27cb3fb7d10ff6a1e84"
        );
        assert_eq!(
            r.signature(),
            "644be983de9a8a3f00db8eadaba61467c3b429e2215758ba897b738ca469fd26"
        );
    }
}
