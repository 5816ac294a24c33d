"""Teachers besides the cross-encoder, and their stack (scikit-learn only, no Lightning).

- :mod:`graphrel.teachers.lexical`: a lexical gradient-boosted teacher;
- :mod:`graphrel.teachers.stacking`: a logistic-regression stack of teachers' logits.
"""
