//! The one CSV writer of the API: the `csv` crate's, with every cell passed through
//! [`amanah_core::csv_cell::neutralize`] so no exported value can run as a spreadsheet formula.

pub(crate) struct Writer(csv::Writer<Vec<u8>>);

impl Writer {
    pub(crate) fn new() -> Self {
        Writer(csv::Writer::from_writer(Vec::new()))
    }

    pub(crate) fn write_record<I, T>(&mut self, record: I) -> Result<(), csv::Error>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        self.0.write_record(
            record
                .into_iter()
                .map(|cell| amanah_core::csv_cell::neutralize(cell.as_ref()).into_owned()),
        )
    }

    /// The CSV text written so far.
    pub(crate) fn finish(self) -> Result<String, csv::Error> {
        let bytes = self.0.into_inner().map_err(|e| e.into_error())?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}
