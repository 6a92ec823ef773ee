"""Learning-curve forecasts: how many labels a task needs, with intervals and a backtest."""

from quickstudy.report.forecast.answers import FORECAST_FILE, TARGET_SOTA, Forecast, forecast_study, parse_target

__all__ = ["FORECAST_FILE", "TARGET_SOTA", "Forecast", "forecast_study", "parse_target"]
