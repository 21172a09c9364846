//! The domain formulas shared by the stream stage (vineyard indicators) and the SQL
//! functions researchers and open-data views call (`vallee_gdd`, `vallee_huglin_day`,
//! registered in DataFusion by `vallee_lake::udf`): one definition, so a figure computed in
//! SQL is the figure the stage wrote.

/// Degree days of a day above `base` (°C), by the mean of the extremes.
pub fn degree_days(tmin: f64, tmax: f64, base: f64) -> f64 {
    ((tmax + tmin) / 2.0 - base).max(0.0)
}

/// A day's term of the Huglin index: ((Tmean − 10) + (Tmax − 10)) / 2 × K(latitude).
pub fn huglin_day(tmean: f64, tmax: f64, latitude: f64) -> f64 {
    (((tmean - 10.0) + (tmax - 10.0)) / 2.0).max(0.0) * huglin_k(latitude)
}

/// Huglin's latitude coefficient, linear between 1.02 (40° N) and 1.06 (50° N).
pub fn huglin_k(latitude: f64) -> f64 {
    1.02 + (latitude.clamp(40.0, 50.0) - 40.0) * 0.004
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_on_known_values() {
        assert_eq!(degree_days(10.0, 24.0, 10.0), 7.0);
        assert_eq!(degree_days(0.0, 8.0, 10.0), 0.0, "never negative");
        assert!((huglin_k(43.6) - 1.0344).abs() < 1e-12);
        assert_eq!(huglin_k(30.0), 1.02, "clamped at 40° N");
        assert!((huglin_day(17.0, 24.0, 43.6) - 10.5 * 1.0344).abs() < 1e-9);
        assert_eq!(huglin_day(5.0, 8.0, 43.6), 0.0);
    }
}
