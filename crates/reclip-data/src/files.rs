use crate::{Problem, ProblemKind};
use std::io::ErrorKind;
use std::path::Path;

/// Reads a whole file, turning failure into a reportable problem.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, Problem> {
    std::fs::read(path).map_err(|e| io_problem(path.display().to_string(), &e))
}

pub(crate) fn io_problem(location: String, e: &std::io::Error) -> Problem {
    let kind = if e.kind() == ErrorKind::NotFound { ProblemKind::MissingFile } else { ProblemKind::UnreadableFile };
    Problem::new(kind, location, e.to_string())
}
