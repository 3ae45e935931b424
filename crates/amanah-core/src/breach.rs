//! Personal-data breaches (UU PDP Art. 46): the 3 x 24-hour notification deadline and the
//! notices to each affected subject and to the agency, in Bahasa Indonesia and English, with
//! what the law requires (the data exposed, when and how, the handling and recovery, a contact).

use crate::consent::date_of;

/// UU PDP Art. 46(1): notify within 3 x 24 hours of detection.
pub const NOTIFY_WITHIN_HOURS: i64 = 72;
const MICROS_PER_HOUR: i64 = 3_600_000_000;

/// When notices of a breach detected at `detected_micros` are due.
pub fn notify_by(detected_micros: i64) -> i64 {
    detected_micros.saturating_add(NOTIFY_WITHIN_HOURS * MICROS_PER_HOUR)
}

/// Not yet notified and past the deadline.
pub fn is_overdue(notified_micros: Option<i64>, notify_by_micros: i64, now_micros: i64) -> bool {
    notified_micros.is_none() && now_micros > notify_by_micros
}

/// The facts every notice states. `categories` are the policy's category names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreachFacts<'a> {
    pub id: &'a str,
    pub detected_micros: i64,
    pub description: &'a str,
    pub cause: &'a str,
    pub measures: &'a str,
    pub categories: &'a [String],
    pub controller: &'a str,
    pub controller_contact: &'a str,
}

/// Who a notice is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience<'a> {
    /// An affected person: their name and contact details (decrypted for this notice only).
    Subject {
        name: Option<&'a str>,
        contact: &'a [String],
    },
    /// The personal-data protection agency (Lembaga PDP).
    Agency { affected: u64 },
}

/// One notice in one language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    pub title: String,
    pub body: String,
}

/// A notice in Bahasa Indonesia and in English.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub id: Text,
    pub en: Text,
}

fn time_text(micros: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!("{} {:02}:{:02} UTC", date_of(micros), t.hour(), t.minute())
}

/// Writes the notice of `facts` for `audience`.
pub fn notice(facts: &BreachFacts<'_>, audience: &Audience<'_>) -> Notice {
    let when = time_text(facts.detected_micros);
    let data = if facts.categories.is_empty() {
        "-".to_owned()
    } else {
        facts.categories.join(", ")
    };
    let contact = format!("{} ({})", facts.controller, facts.controller_contact);
    match audience {
        Audience::Subject { name, contact: to } => {
            let to = to.join(", ");
            let greet_id = name.map_or("Yth. Bapak/Ibu".to_owned(), |n| format!("Yth. {n}"));
            let greet_en = name.map_or("Dear Sir or Madam".to_owned(), |n| format!("Dear {n}"));
            Notice {
                id: Text {
                    title: format!("Pemberitahuan kegagalan pelindungan data pribadi ({})", facts.id),
                    body: format!(
                        "{greet_id},\n\n\
                         Sesuai Pasal 46 UU No. 27 Tahun 2022 tentang Pelindungan Data Pribadi, kami memberitahukan \
                         bahwa telah terjadi kegagalan pelindungan data pribadi yang menyangkut data Anda.\n\n\
                         Data pribadi yang terungkap: {data}.\n\
                         Kapan dan bagaimana terungkap: terdeteksi pada {when}. {description} Penyebab: {cause}\n\
                         Upaya penanganan dan pemulihan: {measures}\n\n\
                         Hubungi kami: {contact}.\n\
                         Pemberitahuan ini dikirim ke: {to}.",
                        description = facts.description,
                        cause = facts.cause,
                        measures = facts.measures,
                    ),
                },
                en: Text {
                    title: format!("Notice of a personal data breach ({})", facts.id),
                    body: format!(
                        "{greet_en},\n\n\
                         Under Article 46 of Law No. 27 of 2022 on Personal Data Protection, we inform you of a \
                         personal data breach that concerns your data.\n\n\
                         Personal data exposed: {data}.\n\
                         When and how: detected on {when}. {description} Cause: {cause}\n\
                         Handling and recovery: {measures}\n\n\
                         Contact us: {contact}.\n\
                         This notice is sent to: {to}.",
                        description = facts.description,
                        cause = facts.cause,
                        measures = facts.measures,
                    ),
                },
            }
        }
        Audience::Agency { affected } => Notice {
            id: Text {
                title: format!(
                    "Pemberitahuan kegagalan pelindungan data pribadi kepada Lembaga PDP ({})",
                    facts.id
                ),
                body: format!(
                    "Kepada Lembaga Pelindungan Data Pribadi,\n\n\
                     Pengendali data pribadi: {contact}.\n\
                     Sesuai Pasal 46 UU No. 27 Tahun 2022, kami memberitahukan kegagalan pelindungan data pribadi.\n\n\
                     Data pribadi yang terungkap: {data}.\n\
                     Jumlah subjek data terdampak: {affected}.\n\
                     Kapan dan bagaimana terungkap: terdeteksi pada {when}. {description} Penyebab: {cause}\n\
                     Upaya penanganan dan pemulihan: {measures}\n\n\
                     Narahubung: {contact}.",
                    description = facts.description,
                    cause = facts.cause,
                    measures = facts.measures,
                ),
            },
            en: Text {
                title: format!(
                    "Notice of a personal data breach to the PDP agency ({})",
                    facts.id
                ),
                body: format!(
                    "To the Personal Data Protection Agency,\n\n\
                     Controller: {contact}.\n\
                     Under Article 46 of Law No. 27 of 2022 we notify a personal data breach.\n\n\
                     Personal data exposed: {data}.\n\
                     Data subjects affected: {affected}.\n\
                     When and how: detected on {when}. {description} Cause: {cause}\n\
                     Handling and recovery: {measures}\n\n\
                     Contact: {contact}.",
                    description = facts.description,
                    cause = facts.cause,
                    measures = facts.measures,
                ),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = MICROS_PER_HOUR;

    #[test]
    fn seventy_two_hours() {
        assert_eq!(notify_by(10 * H), 82 * H);
        assert!(!is_overdue(None, 82 * H, 82 * H));
        assert!(is_overdue(None, 82 * H, 82 * H + 1));
        assert!(!is_overdue(Some(90 * H), 82 * H, 100 * H));
    }

    fn facts(categories: &[String]) -> BreachFacts<'_> {
        BreachFacts {
            id: "b-1",
            detected_micros: 1_795_000_000_000_000,
            description: "A backup bucket was public.",
            cause: "misconfigured storage permissions.",
            measures: "The bucket was closed and keys rotated.",
            categories,
            controller: "Universitas Contoh",
            controller_contact: "dpo@contoh.ac.id",
        }
    }

    #[test]
    fn subject_notice_says_what_the_law_requires_in_both_languages() {
        let cats = vec!["email".to_owned(), "birth_date".to_owned()];
        let f = facts(&cats);
        let contact = vec!["ani@example.id".to_owned()];
        let n = notice(
            &f,
            &Audience::Subject {
                name: Some("Ani"),
                contact: &contact,
            },
        );
        for body in [&n.id.body, &n.en.body] {
            assert!(body.contains("email, birth_date"));
            assert!(body.contains("2026-11-18"), "{body}");
            assert!(body.contains("bucket was closed"));
            assert!(body.contains("misconfigured"));
            assert!(body.contains("dpo@contoh.ac.id"));
            assert!(body.contains("ani@example.id"));
            assert!(body.contains("Ani"));
        }
        assert!(
            n.id.body.contains("Pasal 46") && n.id.body.contains("Data pribadi yang terungkap")
        );
        assert!(n.en.body.contains("Article 46") && n.en.body.contains("Handling and recovery"));
    }

    #[test]
    fn agency_notice_counts_subjects() {
        let cats = vec!["nik".to_owned()];
        let n = notice(&facts(&cats), &Audience::Agency { affected: 12 });
        assert!(n.id.title.contains("Lembaga PDP"));
        assert!(n.id.body.contains("terdampak: 12"));
        assert!(n.en.body.contains("affected: 12"));
        assert!(n.en.body.contains("nik"));
    }
}
