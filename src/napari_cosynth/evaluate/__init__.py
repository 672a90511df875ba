"""Quality measurements: instance separation, adherence, alignment, distribution metrics."""
