//! Building the model from the walked document: every section parsed, every reference checked.

use super::walk::*;
use super::*;
use crate::documents::{parse_size, MediaType};
use toml::Spanned;

pub(super) fn build(root: &Spanned<DeTable<'_>>, d: &mut Diag<'_>) -> Option<Policy> {
    let top = Table {
        label: "the top level of the policy".to_owned(),
        span: root.span(),
        entries: root.get_ref(),
    };
    top.check_keys(TOP_KEYS, d);

    let version = top.required_text(
        "version",
        "a version string such as \"2026-01\", stored with every audit entry",
        d,
    );

    let controller = if top.require(
        "controller",
        " (the [controller] table with name and contact)",
        d,
    ) {
        top.table("controller", "[controller]", d)
            .and_then(|t| parse_controller(&t, d))
    } else {
        None
    };

    let settings = match top.table("settings", "[settings]", d) {
        Some(t) => parse_settings(&t, d),
        None => Some(RawSettings::default()),
    };

    let category_entries = section(&top, &CATEGORIES, true, d);
    let purpose_entries = section(&top, &PURPOSES, true, d);
    let role_entries = section(&top, &ROLES, false, d);
    let recipient_entries = section(&top, &RECIPIENTS, false, d);
    let declared_categories = names(&category_entries);
    let declared_purposes = names(&purpose_entries);

    let mut categories = BTreeMap::new();
    for e in &category_entries {
        if let Some(c) = e.table.as_ref().and_then(|t| parse_category(&e.name, t, d)) {
            categories.insert(e.name.clone(), c);
        }
    }

    let mut purposes = BTreeMap::new();
    for e in &purpose_entries {
        let built = e
            .table
            .as_ref()
            .and_then(|t| parse_purpose(&e.name, t, &declared_categories, &declared_purposes, d));
        if let Some(p) = built {
            purposes.insert(e.name.clone(), p);
        }
    }

    let mut roles = BTreeMap::new();
    for e in &role_entries {
        if e.name == ADMIN_ROLE {
            d.error(
                &e.name_span,
                format!(
                    "role {ADMIN_ROLE:?} is built in (it may use every purpose and see specific \
                     data) and cannot be redefined; give this role another name"
                ),
            );
        }
        let refs = References {
            categories: &declared_categories,
            built_categories: &categories,
            purposes: &declared_purposes,
            built: &purposes,
        };
        if let Some(r) = e
            .table
            .as_ref()
            .and_then(|t| parse_role(&e.name, t, &refs, d))
        {
            roles.insert(e.name.clone(), r);
        }
    }

    let mut recipients = BTreeMap::new();
    for e in &recipient_entries {
        let refs = References {
            categories: &declared_categories,
            built_categories: &categories,
            purposes: &declared_purposes,
            built: &purposes,
        };
        if let Some(r) = e
            .table
            .as_ref()
            .and_then(|t| parse_recipient(&e.name, t, &refs, d))
        {
            recipients.insert(e.name.clone(), r);
        }
    }

    let settings = settings.and_then(|s| finish_settings(s, &declared_categories, &categories, d));

    Some(Policy {
        version: version?,
        controller: controller?,
        settings: settings?,
        categories,
        purposes,
        roles,
        recipients,
    })
}

fn parse_controller(t: &Table<'_, '_>, d: &mut Diag<'_>) -> Option<Controller> {
    t.check_keys(CONTROLLER_KEYS, d);
    let name = t.required_text("name", "the organisation responsible for the data", d);
    let contact = t.required_text(
        "contact",
        "where data subjects reach the controller or its DPO, e.g. an email address",
        d,
    );
    Some(Controller {
        name: name?,
        contact: contact?,
    })
}

/// Settings as read, with positions for the checks that need the categories.
struct RawSettings {
    request_deadline_hours: u32,
    minimum_age: Spanned<u32>,
    adult_age: Spanned<u32>,
    withdrawal_grace_days: u32,
    birth_date_category: Option<Spanned<String>>,
    time_zone: String,
}

impl Default for RawSettings {
    fn default() -> Self {
        RawSettings {
            request_deadline_hours: 72,
            minimum_age: Spanned::new(0..0, 13),
            adult_age: Spanned::new(0..0, 18),
            withdrawal_grace_days: 0,
            birth_date_category: None,
            time_zone: DEFAULT_TIME_ZONE.to_owned(),
        }
    }
}

fn parse_settings(t: &Table<'_, '_>, d: &mut Diag<'_>) -> Option<RawSettings> {
    t.check_keys(SETTINGS_KEYS, d);
    let mut s = RawSettings::default();
    let mut ok = true;
    let mut number = |key: &str, d: &mut Diag<'_>| -> Option<Spanned<u32>> {
        let present = t.get(key).is_some();
        let n = t.number(key, d);
        ok &= !present || n.is_some();
        n
    };
    let deadline = number("request_deadline_hours", d);
    let minimum_age = number("minimum_age", d);
    let adult_age = number("adult_age", d);
    let grace = number("withdrawal_grace_days", d);

    if let Some(h) = deadline {
        if *h.get_ref() == 0 {
            d.error(
                &h.span(),
                "request_deadline_hours must be at least 1 (UU PDP gives data subjects an answer \
                 within 3 x 24 hours: 72)",
            );
        }
        s.request_deadline_hours = h.into_inner();
    }
    if let Some(g) = grace {
        if *g.get_ref() > MAX_WITHDRAWAL_GRACE_DAYS {
            d.error(
                &g.span(),
                format!(
                    "withdrawal_grace_days is {}, but processing must stop at most 3 x 24 hours \
                     after consent is withdrawn (UU PDP); use 0 to {MAX_WITHDRAWAL_GRACE_DAYS}",
                    g.get_ref()
                ),
            );
        }
        s.withdrawal_grace_days = g.into_inner();
    }
    let explicit_minimum = minimum_age.is_some();
    if let Some(a) = minimum_age {
        s.minimum_age = a;
    }
    if let Some(a) = adult_age {
        s.adult_age = a;
    }
    if s.minimum_age.get_ref() > s.adult_age.get_ref() {
        let span = if explicit_minimum {
            s.minimum_age.span()
        } else {
            s.adult_age.span()
        };
        d.error(
            &span,
            format!(
                "minimum_age ({}) is greater than adult_age ({}); a subject must be allowed to \
                 exist before acting alone",
                s.minimum_age.get_ref(),
                s.adult_age.get_ref()
            ),
        );
    }
    s.birth_date_category = t.string("birth_date_category", d);
    ok &= t.get("birth_date_category").is_none() || s.birth_date_category.is_some();
    if let Some(zone) = t.string("time_zone", d) {
        if jiff::tz::TimeZone::get(zone.get_ref()).is_ok() {
            s.time_zone = zone.into_inner();
        } else {
            d.error(
                &zone.span(),
                format!(
                    "time_zone {:?} is not a time zone name of the IANA database (e.g. \
                     \"Asia/Jakarta\", \"Asia/Makassar\", \"Asia/Jayapura\")",
                    zone.get_ref()
                ),
            );
            ok = false;
        }
    } else {
        ok &= t.get("time_zone").is_none();
    }
    ok.then_some(s)
}

fn finish_settings(
    s: RawSettings,
    declared: &BTreeSet<String>,
    categories: &BTreeMap<String, Category>,
    d: &mut Diag<'_>,
) -> Option<Settings> {
    if let Some(name) = &s.birth_date_category {
        let n = name.get_ref();
        if !declared.contains(n) {
            let hint = did_you_mean(n, declared.iter().map(String::as_str));
            d.error(
                &name.span(),
                format!(
                    "birth_date_category names unknown category {n:?}{hint}; declare it as \
                     [categories.{n}] with type = \"date\""
                ),
            );
        } else if let Some(c) = categories.get(n) {
            if c.field_type != FieldType::Date {
                d.error(
                    &name.span(),
                    format!(
                        "birth_date_category {n:?} has type {:?}, but birth dates must be a \
                         category of type \"date\"",
                        c.field_type.as_str()
                    ),
                );
            }
        }
    }
    Some(Settings {
        request_deadline_hours: s.request_deadline_hours,
        minimum_age: s.minimum_age.into_inner(),
        adult_age: s.adult_age.into_inner(),
        withdrawal_grace_days: s.withdrawal_grace_days,
        birth_date_category: s.birth_date_category.map(Spanned::into_inner),
        time_zone: s.time_zone,
    })
}

fn parse_category(name: &str, t: &Table<'_, '_>, d: &mut Diag<'_>) -> Option<Category> {
    t.check_keys(CATEGORY_KEYS, d);
    let field_type = t.required_spelled::<FieldType>("type", "type", d);
    let class = t.required_spelled::<DataClass>("class", "class", d);
    let index = t.boolean("index", d);
    let unique = t.boolean("unique", d);
    let sign_in = t.boolean("sign_in", d);
    let indexed = index.as_ref().is_some_and(|b| *b.get_ref());
    if let Some(s) = sign_in.as_ref().filter(|s| *s.get_ref()) {
        let address = matches!(field_type, Some(FieldType::Email | FieldType::Phone));
        if !address || !indexed {
            d.error(
                &s.span(),
                format!(
                    "category {name:?} has sign_in = true: only an indexed e-mail or phone \
                     category can receive sign-in codes (type = \"email\" or \"phone\" with \
                     index = true)"
                ),
            );
        }
    }
    let is_document = field_type == Some(FieldType::Document);
    if let Some(u) = &unique {
        if *u.get_ref() && !indexed && !is_document {
            d.error(
                &u.span(),
                format!(
                    "category {name:?} has unique = true without index = true; uniqueness is \
                     checked through the blind index, so add index = true"
                ),
            );
        }
    }
    if let (Some(i), Some(FieldType::Bool)) = (&index, field_type) {
        if *i.get_ref() {
            d.error(
                &i.span(),
                format!(
                    "category {name:?} has type \"bool\" and cannot be indexed: a blind index of \
                     a yes/no value would reveal it; remove index = true"
                ),
            );
        }
    }
    let document = match field_type {
        Some(FieldType::Document) => {
            for (key, flag) in [("index", &index), ("unique", &unique)] {
                if let Some(f) = flag.as_ref().filter(|f| *f.get_ref()) {
                    d.error(
                        &f.span(),
                        format!(
                            "category {name:?} has type \"document\" and cannot be {}: a blind \
                             index of a file makes no sense (a document is found through its \
                             subject); remove {key} = true",
                            if key == "index" { "indexed" } else { "unique" }
                        ),
                    );
                }
            }
            Some(parse_document_rules(name, t, d)?)
        }
        Some(other) => {
            for key in ["media_types", "max_size"] {
                if let Some(v) = t.get(key) {
                    d.error(
                        &v.span(),
                        format!(
                            "{key} applies only to categories of type \"document\"; category \
                             {name:?} has type {:?}: remove {key} or set type = \"document\"",
                            other.as_str()
                        ),
                    );
                }
            }
            None
        }
        None => None,
    };
    Some(Category {
        name: name.to_owned(),
        field_type: field_type?,
        class: class?,
        index: indexed,
        unique: unique.is_some_and(|u| *u.get_ref()),
        sign_in: sign_in.is_some_and(|s| *s.get_ref()),
        document,
    })
}

/// The `media_types` and `max_size` of a `document` category, both required.
fn parse_document_rules(name: &str, t: &Table<'_, '_>, d: &mut Diag<'_>) -> Option<DocumentRules> {
    let expected = MediaType::expected();
    let media_types = if t.require(
        "media_types",
        &format!(" (the file types it accepts, from: {expected})"),
        d,
    ) {
        t.strings("media_types", d).and_then(|list| {
            if list.get_ref().is_empty() {
                d.error(
                    &list.span(),
                    format!(
                        "category {name:?} accepts no media types; list at least one of: \
                         {expected}"
                    ),
                );
                return None;
            }
            let mut types = Vec::new();
            let mut ok = true;
            for item in list.get_ref() {
                let s = item.get_ref().as_str();
                match MediaType::ALL.into_iter().find(|m| m.as_str() == s) {
                    Some(m) if types.contains(&m) => {
                        ok = false;
                        d.error(
                            &item.span(),
                            format!("media type {s:?} is listed twice in category {name:?}"),
                        );
                    }
                    Some(m) => types.push(m),
                    None => {
                        ok = false;
                        let hint = match MediaType::parse(s) {
                            Some(m) => format!(" (write it {:?})", m.as_str()),
                            None => String::new(),
                        };
                        d.error(
                            &item.span(),
                            format!(
                                "unknown media type {s:?} for category {name:?}{hint}; expected \
                                 one of: {expected}"
                            ),
                        );
                    }
                }
            }
            ok.then_some(types)
        })
    } else {
        None
    };
    let max_size = if t.require(
        "max_size",
        " (the largest file it accepts, e.g. \"10MB\" or \"512KiB\")",
        d,
    ) {
        t.string("max_size", d)
            .and_then(|raw| match parse_size(raw.get_ref()) {
                Ok(n) => Some(n),
                Err(e) => {
                    d.error(
                        &raw.span(),
                        format!(
                            "invalid max_size {:?} for category {name:?}: {e}",
                            raw.get_ref()
                        ),
                    );
                    None
                }
            })
    } else {
        None
    };
    Some(DocumentRules {
        media_types: media_types?,
        max_size: max_size?,
    })
}

fn parse_purpose(
    name: &str,
    t: &Table<'_, '_>,
    declared_categories: &BTreeSet<String>,
    declared_purposes: &BTreeSet<String>,
    d: &mut Diag<'_>,
) -> Option<Purpose> {
    t.check_keys(PURPOSE_KEYS, d);
    let basis = t.required_spelled::<LegalBasis>("basis", "legal basis", d);

    let categories = if t.require(
        "categories",
        " (the data categories this purpose needs, e.g. categories = [\"email\"])",
        d,
    ) {
        t.strings("categories", d)
    } else {
        None
    };
    if let Some(list) = &categories {
        if list.get_ref().is_empty() {
            d.error(
                &list.span(),
                format!("purpose {name:?} covers no categories; list the data it needs"),
            );
        }
        check_references(
            list.get_ref(),
            declared_categories,
            &CATEGORIES,
            &t.label,
            d,
        );
    }

    let retention = if t.require(
        "retention",
        " (how long the data is kept, e.g. \"30d\", \"6m\" or \"5y\")",
        d,
    ) {
        t.string("retention", d).and_then(|r| {
            let parsed = Retention::parse(r.get_ref());
            if parsed.is_none() {
                d.error(
                    &r.span(),
                    format!(
                        "invalid retention {:?} for purpose {name:?}; expected a whole number \
                         of at least 1 followed by d (days), m (months) or y (years), e.g. \
                         \"30d\", \"6m\" or \"5y\"",
                        r.get_ref()
                    ),
                );
            }
            parsed
        })
    } else {
        None
    };

    let description = t
        .string("description", d)
        .map(Spanned::into_inner)
        .filter(|s| !s.trim().is_empty());
    let retention_from = t.spelled::<RetentionFrom>("retention_from", "retention start", d);
    let on_expiry = t.spelled::<OnExpiry>("on_expiry", "expiry action", d);

    let channels = t.strings("channels", d);
    if let Some(list) = &channels {
        let mut seen = BTreeSet::new();
        for c in list.get_ref() {
            let ch = c.get_ref().as_str();
            if !CHANNELS.contains(&ch) {
                d.error(
                    &c.span(),
                    format!(
                        "unknown channel {ch:?} for purpose {name:?}; expected one of: {}",
                        CHANNELS.join(", ")
                    ),
                );
            }
            if !seen.insert(ch) {
                d.error(
                    &c.span(),
                    format!("channel {ch:?} is listed twice in purpose {name:?}"),
                );
            }
        }
    }
    let restricted_use = t.flag("restricted_use", d);
    let compatible_with = t.strings("compatible_with", d);
    if let Some(list) = &compatible_with {
        check_references(list.get_ref(), declared_purposes, &PURPOSES, &t.label, d);
        for p in list.get_ref() {
            if p.get_ref() == name {
                d.error(
                    &p.span(),
                    format!("purpose {name:?} lists itself in compatible_with"),
                );
            }
        }
    }

    Some(Purpose {
        name: name.to_owned(),
        basis: basis?,
        categories: plain(categories?.get_ref()),
        retention: retention?,
        retention_from: retention_from.unwrap_or_default(),
        on_expiry: on_expiry.unwrap_or_default(),
        description,
        channels: channels.map(|c| plain(c.get_ref())).unwrap_or_default(),
        restricted_use,
        compatible_with: compatible_with
            .map(|c| plain(c.get_ref()))
            .unwrap_or_default(),
    })
}

/// What roles and recipients may refer to.
struct References<'r> {
    categories: &'r BTreeSet<String>,
    /// The categories that were built (valid), for their types.
    built_categories: &'r BTreeMap<String, Category>,
    purposes: &'r BTreeSet<String>,
    /// The purposes that were built (valid).
    built: &'r BTreeMap<String, Purpose>,
}

/// Reads a non-empty, checked `purposes` list of a role or recipient.
fn purpose_list(
    t: &Table<'_, '_>,
    refs: &References<'_>,
    d: &mut Diag<'_>,
) -> Option<Vec<Spanned<String>>> {
    if !t.require(
        "purposes",
        " (the purposes it serves, e.g. purposes = [\"service\"])",
        d,
    ) {
        return None;
    }
    let list = t.strings("purposes", d)?;
    if list.get_ref().is_empty() {
        d.error(
            &list.span(),
            format!(
                "{} lists no purposes; name at least one purpose it serves",
                t.label
            ),
        );
    }
    check_references(list.get_ref(), refs.purposes, &PURPOSES, &t.label, d);
    Some(list.into_inner())
}

/// Reports each category of `list` (declared, but) covered by none of `purposes`.
fn check_covered(
    list: &[Spanned<String>],
    purposes: &[Spanned<String>],
    refs: &References<'_>,
    owner: &str,
    what: &str,
    d: &mut Diag<'_>,
) {
    let Some(resolved) = resolve(purposes, refs.built) else {
        return;
    };
    if resolved.is_empty() {
        return; // "lists no purposes" is reported already.
    }
    let names = purposes
        .iter()
        .map(|p| p.get_ref().as_str())
        .collect::<Vec<_>>()
        .join(", ");
    for c in list {
        let c_name = c.get_ref();
        if refs.categories.contains(c_name) && !resolved.iter().any(|p| p.covers(c_name)) {
            d.error(
                &c.span(),
                format!(
                    "{owner} {what} category {c_name:?}, but none of its purposes ({names}) \
                     covers it; add it to one of them or remove it here"
                ),
            );
        }
    }
}

fn parse_role(
    name: &str,
    t: &Table<'_, '_>,
    refs: &References<'_>,
    d: &mut Diag<'_>,
) -> Option<Role> {
    t.check_keys(ROLE_KEYS, d);
    let purposes = purpose_list(t, refs, d);
    let specific = t.flag("specific", d);
    let mask = t.strings("mask", d);
    if let Some(mask) = &mask {
        let owner = format!("the mask of role {name:?}");
        check_references(mask.get_ref(), refs.categories, &CATEGORIES, &owner, d);
        if let Some(purposes) = &purposes {
            check_covered(mask.get_ref(), purposes, refs, &t.label, "masks", d);
        }
    }
    let approve_disclosures = t.flag("approve_disclosures", d);
    let authorize_disclosures = t.flag("authorize_disclosures", d);
    let handle_requests = t.flag("handle_requests", d);
    let end_relationships = t.flag("end_relationships", d);
    if approve_disclosures && authorize_disclosures {
        // Four eyes: the person in charge and the account owner must be two people, so no
        // one role may hold both steps.
        d.error(
            &t.span,
            format!(
                "role {name:?} both approves and authorizes disclosures; four eyes need two \
                 people: give approve_disclosures and authorize_disclosures to different roles"
            ),
        );
    }
    if handle_requests && !specific {
        // Answering a request means the whole record: the access export, the values the
        // console reveals, a minor's data. A role that may not see specific data or a child's
        // record cannot answer for it.
        d.error(
            &t.span,
            format!(
                "role {name:?} handles requests but is not cleared for specific data; answering                  a request shows the whole record (specific data and minors included): add                  specific = true"
            ),
        );
    }
    Some(Role {
        name: name.to_owned(),
        purposes: plain(&purposes?),
        specific,
        mask: mask.map(|m| plain(m.get_ref())).unwrap_or_default(),
        approve_disclosures,
        authorize_disclosures,
        handle_requests,
        end_relationships,
    })
}

/// Validates a country code; returns it upper-cased, or reports it.
fn parse_country(recipient: &str, raw: &Spanned<String>, d: &mut Diag<'_>) -> Option<String> {
    let s = raw.get_ref();
    if s.len() != 2 || !s.bytes().all(|b| b.is_ascii_alphabetic()) {
        d.error(
            &raw.span(),
            format!(
                "invalid country {s:?} for recipient {recipient:?}; expected a two-letter \
                 ISO 3166-1 alpha-2 code such as \"ID\", \"SG\" or \"US\""
            ),
        );
        return None;
    }
    let code = s.to_ascii_uppercase();
    if is_country_code(&code) {
        return Some(code);
    }
    let hint = match code.as_str() {
        "UK" => " (the United Kingdom is \"GB\")",
        "EL" => " (Greece is \"GR\")",
        "EU" => " (the EU is not a country: name the member state where the data goes)",
        _ => "",
    };
    d.error(
        &raw.span(),
        format!(
            "country {s:?} for recipient {recipient:?} is not an assigned ISO 3166-1 alpha-2 \
             code{hint}"
        ),
    );
    None
}

fn parse_recipient(
    name: &str,
    t: &Table<'_, '_>,
    refs: &References<'_>,
    d: &mut Diag<'_>,
) -> Option<Recipient> {
    t.check_keys(RECIPIENT_KEYS, d);
    let country = if t.require(
        "country",
        " (where the recipient processes the data: an ISO 3166-1 alpha-2 code such as \"ID\")",
        d,
    ) {
        t.string("country", d)
            .and_then(|c| parse_country(name, &c, d))
    } else {
        None
    };
    let purposes = purpose_list(t, refs, d);
    let kind = t.spelled::<RecipientKind>("kind", "recipient kind", d);
    let categories = t.strings("categories", d);
    if let Some(list) = &categories {
        check_references(list.get_ref(), refs.categories, &CATEGORIES, &t.label, d);
        if let Some(purposes) = &purposes {
            check_covered(list.get_ref(), purposes, refs, &t.label, "lists", d);
        }
        for c in list.get_ref() {
            if refs
                .built_categories
                .get(c.get_ref())
                .is_some_and(Category::is_document)
            {
                d.error(
                    &c.span(),
                    format!(
                        "{} lists document category {:?}, but disclosures release field values \
                         only, never documents; remove it here",
                        t.label,
                        c.get_ref()
                    ),
                );
            }
        }
    }
    let transfer_basis_given = t.get("transfer_basis").is_some();
    let transfer_basis = t.spelled::<TransferBasis>("transfer_basis", "transfer basis", d);
    if let Some(code) = &country {
        if code != HOME_COUNTRY && !transfer_basis_given {
            d.error(
                &t.span,
                format!(
                    "recipient {name:?} is outside Indonesia (country {code:?}), so it needs \
                     transfer_basis (UU PDP Art. 56); expected one of: {}",
                    TransferBasis::expected()
                ),
            );
        }
    }
    let pseudonymize = t.flag("pseudonymize", d);
    Some(Recipient {
        name: name.to_owned(),
        country: country?,
        kind: kind.unwrap_or_default(),
        purposes: plain(&purposes?),
        categories: categories.map(|c| plain(c.get_ref())).unwrap_or_default(),
        transfer_basis,
        pseudonymize,
    })
}
