"""The built-in `stats` model: pooled summaries, frequency tables, histograms and quantiles, with
disclosure control at the sites and after pooling, or differential privacy. Nothing is re-exported
here: the sandbox imports only the modules a round needs."""
