"""One family of errors raised by the domain when a command is refused."""


class TaskTrailError(Exception):
    """Raised when a command is refused; nothing is recorded."""


class TaskNotFound(TaskTrailError):
    """Raised when a command or query names a task that does not exist."""


class InvalidStatusChange(TaskTrailError):
    """Raised when the status table does not allow the requested change."""


class MissingRequiredField(TaskTrailError):
    """Raised when a command lacks a field it cannot do without."""


class InvalidField(TaskTrailError):
    """Raised when a field has a value of the wrong type or outside its allowed values."""


class TaskAlreadyClaimed(InvalidStatusChange):
    """Raised when a worker claims a task that another worker (or status change) took first."""


class ProjectNotFound(TaskTrailError):
    """Raised when a command or query names a project that does not exist."""


class ProjectNameTaken(TaskTrailError):
    """Raised when a project is created with the name another project already has."""


class InvalidProjectName(InvalidField):
    """Raised when a project name is blank, too long or has an empty path part."""
