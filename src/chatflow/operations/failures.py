"""Where StepFailed and Cancelled used to live; they are in ``chatflow.failures`` now.

Kept only for importers outside the operations package that have not moved yet.
"""

from chatflow.failures import Cancelled as Cancelled
from chatflow.failures import StepFailed as StepFailed
