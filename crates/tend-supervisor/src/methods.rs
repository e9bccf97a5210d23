//! The one table of Supervisor's `supervisor.*` methods: name, the
//! docstring of `supervisor/rpcinterface.py` verbatim as Python 3.11 returns
//! it (`system.methodHelp`; `system.methodSignature` reads its
//! `@param`/`@return` tags), the number of arguments (Python's signature) and
//! the [`Verb`] that runs it. Aliases share their target's text and verb.

use crate::xmlrpc::MethodInfo;

/// What each method does; aliases (`getVersion`, `readMainLog`,
/// `readProcessLog`, `tailProcessLog`, `clearProcessLog`) share their
/// target's. [`crate::rpc::Rpc`] matches on it, so a method in the table
/// without a handler does not compile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// `supervisor.addProcessGroup`.
    AddProcessGroup,
    /// `supervisor.clearAllProcessLogs`.
    ClearAllProcessLogs,
    /// `supervisor.clearLog`.
    ClearLog,
    /// `supervisor.clearProcessLogs`.
    ClearProcessLogs,
    /// `supervisor.getAllConfigInfo`.
    GetAllConfigInfo,
    /// `supervisor.getAllProcessInfo`.
    GetAllProcessInfo,
    /// `supervisor.getAPIVersion`.
    GetApiVersion,
    /// `supervisor.getIdentification`.
    GetIdentification,
    /// `supervisor.getPID`.
    GetPid,
    /// `supervisor.getProcessInfo`.
    GetProcessInfo,
    /// `supervisor.getState`.
    GetState,
    /// `supervisor.getSupervisorVersion`.
    GetSupervisorVersion,
    /// `supervisor.readLog`.
    ReadLog,
    /// `supervisor.readProcessStderrLog`.
    ReadProcessStderrLog,
    /// `supervisor.readProcessStdoutLog`.
    ReadProcessStdoutLog,
    /// `supervisor.reloadConfig`.
    ReloadConfig,
    /// `supervisor.removeProcessGroup`.
    RemoveProcessGroup,
    /// `supervisor.restart`.
    Restart,
    /// `supervisor.sendProcessStdin`.
    SendProcessStdin,
    /// `supervisor.sendRemoteCommEvent`.
    SendRemoteCommEvent,
    /// `supervisor.shutdown`.
    Shutdown,
    /// `supervisor.signalAllProcesses`.
    SignalAllProcesses,
    /// `supervisor.signalProcess`.
    SignalProcess,
    /// `supervisor.signalProcessGroup`.
    SignalProcessGroup,
    /// `supervisor.startAllProcesses`.
    StartAllProcesses,
    /// `supervisor.startProcess`.
    StartProcess,
    /// `supervisor.startProcessGroup`.
    StartProcessGroup,
    /// `supervisor.stopAllProcesses`.
    StopAllProcesses,
    /// `supervisor.stopProcess`.
    StopProcess,
    /// `supervisor.stopProcessGroup`.
    StopProcessGroup,
    /// `supervisor.tailProcessStderrLog`.
    TailProcessStderrLog,
    /// `supervisor.tailProcessStdoutLog`.
    TailProcessStdoutLog,
}

/// Every `supervisor.*` method and alias, sorted by name.
pub(crate) const METHODS: [MethodInfo<Verb>; 37] = [
    MethodInfo {
        name: "supervisor.addProcessGroup",
        help: " Update the config for a running process from config file.\n\n        @param string name         name of process group to add\n        @return boolean result     true if successful\n        ",
        params: (1, 1),
        verb: Verb::AddProcessGroup,
    },
    MethodInfo {
        name: "supervisor.clearAllProcessLogs",
        help: " Clear all process log files\n\n        @return array result   An array of process status info structs\n        ",
        params: (0, 0),
        verb: Verb::ClearAllProcessLogs,
    },
    MethodInfo {
        name: "supervisor.clearLog",
        help: " Clear the main log.\n\n        @return boolean result always returns True unless error\n        ",
        params: (0, 0),
        verb: Verb::ClearLog,
    },
    MethodInfo {
        name: "supervisor.clearProcessLog",
        help: " Clear the stdout and stderr logs for the named process and\n        reopen them.\n\n        @param string name   The name of the process (or 'group:name')\n        @return boolean result      Always True unless error\n        ",
        params: (1, 1),
        verb: Verb::ClearProcessLogs,
    },
    MethodInfo {
        name: "supervisor.clearProcessLogs",
        help: " Clear the stdout and stderr logs for the named process and\n        reopen them.\n\n        @param string name   The name of the process (or 'group:name')\n        @return boolean result      Always True unless error\n        ",
        params: (1, 1),
        verb: Verb::ClearProcessLogs,
    },
    MethodInfo {
        name: "supervisor.getAPIVersion",
        help: " Return the version of the RPC API used by supervisord\n\n        @return string version id\n        ",
        params: (0, 0),
        verb: Verb::GetApiVersion,
    },
    MethodInfo {
        name: "supervisor.getAllConfigInfo",
        help: " Get info about all available process configurations. Each struct\n        represents a single process (i.e. groups get flattened).\n\n        @return array result  An array of process config info structs\n        ",
        params: (0, 0),
        verb: Verb::GetAllConfigInfo,
    },
    MethodInfo {
        name: "supervisor.getAllProcessInfo",
        help: " Get info about all processes\n\n        @return array result  An array of process status results\n        ",
        params: (0, 0),
        verb: Verb::GetAllProcessInfo,
    },
    MethodInfo {
        name: "supervisor.getIdentification",
        help: " Return identifying string of supervisord\n\n        @return string identifier identifying string\n        ",
        params: (0, 0),
        verb: Verb::GetIdentification,
    },
    MethodInfo {
        name: "supervisor.getPID",
        help: " Return the PID of supervisord\n\n        @return int PID\n        ",
        params: (0, 0),
        verb: Verb::GetPid,
    },
    MethodInfo {
        name: "supervisor.getProcessInfo",
        help: " Get info about a process named name\n\n        @param string name The name of the process (or 'group:name')\n        @return struct result     A structure containing data about the process\n        ",
        params: (1, 1),
        verb: Verb::GetProcessInfo,
    },
    MethodInfo {
        name: "supervisor.getState",
        help: " Return current state of supervisord as a struct\n\n        @return struct A struct with keys int statecode, string statename\n        ",
        params: (0, 0),
        verb: Verb::GetState,
    },
    MethodInfo {
        name: "supervisor.getSupervisorVersion",
        help: " Return the version of the supervisor package in use by supervisord\n\n        @return string version id\n        ",
        params: (0, 0),
        verb: Verb::GetSupervisorVersion,
    },
    MethodInfo {
        name: "supervisor.getVersion",
        help: " Return the version of the RPC API used by supervisord\n\n        @return string version id\n        ",
        params: (0, 0),
        verb: Verb::GetApiVersion,
    },
    MethodInfo {
        name: "supervisor.readLog",
        help: " Read length bytes from the main log starting at offset\n\n        @param int offset         offset to start reading from.\n        @param int length         number of bytes to read from the log.\n        @return string result     Bytes of log\n        ",
        params: (2, 2),
        verb: Verb::ReadLog,
    },
    MethodInfo {
        name: "supervisor.readMainLog",
        help: " Read length bytes from the main log starting at offset\n\n        @param int offset         offset to start reading from.\n        @param int length         number of bytes to read from the log.\n        @return string result     Bytes of log\n        ",
        params: (2, 2),
        verb: Verb::ReadLog,
    },
    MethodInfo {
        name: "supervisor.readProcessLog",
        help: " Read length bytes from name's stdout log starting at offset\n\n        @param string name        the name of the process (or 'group:name')\n        @param int offset         offset to start reading from.\n        @param int length         number of bytes to read from the log.\n        @return string result     Bytes of log\n        ",
        params: (3, 3),
        verb: Verb::ReadProcessStdoutLog,
    },
    MethodInfo {
        name: "supervisor.readProcessStderrLog",
        help: " Read length bytes from name's stderr log starting at offset\n\n        @param string name        the name of the process (or 'group:name')\n        @param int offset         offset to start reading from.\n        @param int length         number of bytes to read from the log.\n        @return string result     Bytes of log\n        ",
        params: (3, 3),
        verb: Verb::ReadProcessStderrLog,
    },
    MethodInfo {
        name: "supervisor.readProcessStdoutLog",
        help: " Read length bytes from name's stdout log starting at offset\n\n        @param string name        the name of the process (or 'group:name')\n        @param int offset         offset to start reading from.\n        @param int length         number of bytes to read from the log.\n        @return string result     Bytes of log\n        ",
        params: (3, 3),
        verb: Verb::ReadProcessStdoutLog,
    },
    MethodInfo {
        name: "supervisor.reloadConfig",
        help: "\n        Reload the configuration.\n\n        The result contains three arrays containing names of process\n        groups:\n\n        * `added` gives the process groups that have been added\n        * `changed` gives the process groups whose contents have\n          changed\n        * `removed` gives the process groups that are no longer\n          in the configuration\n\n        @return array result  [[added, changed, removed]]\n\n        ",
        params: (0, 0),
        verb: Verb::ReloadConfig,
    },
    MethodInfo {
        name: "supervisor.removeProcessGroup",
        help: " Remove a stopped process from the active configuration.\n\n        @param string name         name of process group to remove\n        @return boolean result     Indicates whether the removal was successful\n        ",
        params: (1, 1),
        verb: Verb::RemoveProcessGroup,
    },
    MethodInfo {
        name: "supervisor.restart",
        help: " Restart the supervisor process\n\n        @return boolean result  always return True unless error\n        ",
        params: (0, 0),
        verb: Verb::Restart,
    },
    MethodInfo {
        name: "supervisor.sendProcessStdin",
        help: " Send a string of chars to the stdin of the process name.\n        If non-7-bit data is sent (unicode), it is encoded to utf-8\n        before being sent to the process' stdin.  If chars is not a\n        string or is not unicode, raise INCORRECT_PARAMETERS.  If the\n        process is not running, raise NOT_RUNNING.  If the process'\n        stdin cannot accept input (e.g. it was closed by the child\n        process), raise NO_FILE.\n\n        @param string name        The process name to send to (or 'group:name')\n        @param string chars       The character data to send to the process\n        @return boolean result    Always return True unless error\n        ",
        params: (2, 2),
        verb: Verb::SendProcessStdin,
    },
    MethodInfo {
        name: "supervisor.sendRemoteCommEvent",
        help: " Send an event that will be received by event listener\n        subprocesses subscribing to the RemoteCommunicationEvent.\n\n        @param  string  type  String for the \"type\" key in the event header\n        @param  string  data  Data for the event body\n        @return boolean       Always return True unless error\n        ",
        params: (2, 2),
        verb: Verb::SendRemoteCommEvent,
    },
    MethodInfo {
        name: "supervisor.shutdown",
        help: " Shut down the supervisor process\n\n        @return boolean result always returns True unless error\n        ",
        params: (0, 0),
        verb: Verb::Shutdown,
    },
    MethodInfo {
        name: "supervisor.signalAllProcesses",
        help: " Send a signal to all processes in the process list\n\n        @param string signal  Signal to send, as name ('HUP') or number ('1')\n        @return array         An array of process status info structs\n        ",
        params: (1, 1),
        verb: Verb::SignalAllProcesses,
    },
    MethodInfo {
        name: "supervisor.signalProcess",
        help: " Send an arbitrary UNIX signal to the process named by name\n\n        @param string name    Name of the process to signal (or 'group:name')\n        @param string signal  Signal to send, as name ('HUP') or number ('1')\n        @return boolean\n        ",
        params: (2, 2),
        verb: Verb::SignalProcess,
    },
    MethodInfo {
        name: "supervisor.signalProcessGroup",
        help: " Send a signal to all processes in the group named 'name'\n\n        @param string name    The group name\n        @param string signal  Signal to send, as name ('HUP') or number ('1')\n        @return array\n        ",
        params: (2, 2),
        verb: Verb::SignalProcessGroup,
    },
    MethodInfo {
        name: "supervisor.startAllProcesses",
        help: " Start all processes listed in the configuration file\n\n        @param boolean wait    Wait for each process to be fully started\n        @return array result   An array of process status info structs\n        ",
        params: (0, 1),
        verb: Verb::StartAllProcesses,
    },
    MethodInfo {
        name: "supervisor.startProcess",
        help: " Start a process\n\n        @param string name Process name (or ``group:name``, or ``group:*``)\n        @param boolean wait Wait for process to be fully started\n        @return boolean result     Always true unless error\n\n        ",
        params: (1, 2),
        verb: Verb::StartProcess,
    },
    MethodInfo {
        name: "supervisor.startProcessGroup",
        help: " Start all processes in the group named 'name'\n\n        @param string name     The group name\n        @param boolean wait    Wait for each process to be fully started\n        @return array result   An array of process status info structs\n        ",
        params: (1, 2),
        verb: Verb::StartProcessGroup,
    },
    MethodInfo {
        name: "supervisor.stopAllProcesses",
        help: " Stop all processes in the process list\n\n        @param  boolean wait   Wait for each process to be fully stopped\n        @return array result   An array of process status info structs\n        ",
        params: (0, 1),
        verb: Verb::StopAllProcesses,
    },
    MethodInfo {
        name: "supervisor.stopProcess",
        help: " Stop a process named by name\n\n        @param string name  The name of the process to stop (or 'group:name')\n        @param boolean wait        Wait for the process to be fully stopped\n        @return boolean result     Always return True unless error\n        ",
        params: (1, 2),
        verb: Verb::StopProcess,
    },
    MethodInfo {
        name: "supervisor.stopProcessGroup",
        help: " Stop all processes in the process group named 'name'\n\n        @param string name     The group name\n        @param boolean wait    Wait for each process to be fully stopped\n        @return array result   An array of process status info structs\n        ",
        params: (1, 2),
        verb: Verb::StopProcessGroup,
    },
    MethodInfo {
        name: "supervisor.tailProcessLog",
        help: "\n        Provides a more efficient way to tail the (stdout) log than\n        readProcessStdoutLog().  Use readProcessStdoutLog() to read\n        chunks and tailProcessStdoutLog() to tail.\n\n        Requests (length) bytes from the (name)'s log, starting at\n        (offset).  If the total log size is greater than (offset +\n        length), the overflow flag is set and the (offset) is\n        automatically increased to position the buffer at the end of\n        the log.  If less than (length) bytes are available, the\n        maximum number of available bytes will be returned.  (offset)\n        returned is always the last offset in the log +1.\n\n        @param string name         the name of the process (or 'group:name')\n        @param int offset          offset to start reading from\n        @param int length          maximum number of bytes to return\n        @return array result       [string bytes, int offset, bool overflow]\n        ",
        params: (3, 3),
        verb: Verb::TailProcessStdoutLog,
    },
    MethodInfo {
        name: "supervisor.tailProcessStderrLog",
        help: "\n        Provides a more efficient way to tail the (stderr) log than\n        readProcessStderrLog().  Use readProcessStderrLog() to read\n        chunks and tailProcessStderrLog() to tail.\n\n        Requests (length) bytes from the (name)'s log, starting at\n        (offset).  If the total log size is greater than (offset +\n        length), the overflow flag is set and the (offset) is\n        automatically increased to position the buffer at the end of\n        the log.  If less than (length) bytes are available, the\n        maximum number of available bytes will be returned.  (offset)\n        returned is always the last offset in the log +1.\n\n        @param string name         the name of the process (or 'group:name')\n        @param int offset          offset to start reading from\n        @param int length          maximum number of bytes to return\n        @return array result       [string bytes, int offset, bool overflow]\n        ",
        params: (3, 3),
        verb: Verb::TailProcessStderrLog,
    },
    MethodInfo {
        name: "supervisor.tailProcessStdoutLog",
        help: "\n        Provides a more efficient way to tail the (stdout) log than\n        readProcessStdoutLog().  Use readProcessStdoutLog() to read\n        chunks and tailProcessStdoutLog() to tail.\n\n        Requests (length) bytes from the (name)'s log, starting at\n        (offset).  If the total log size is greater than (offset +\n        length), the overflow flag is set and the (offset) is\n        automatically increased to position the buffer at the end of\n        the log.  If less than (length) bytes are available, the\n        maximum number of available bytes will be returned.  (offset)\n        returned is always the last offset in the log +1.\n\n        @param string name         the name of the process (or 'group:name')\n        @param int offset          offset to start reading from\n        @param int length          maximum number of bytes to return\n        @return array result       [string bytes, int offset, bool overflow]\n        ",
        params: (3, 3),
        verb: Verb::TailProcessStdoutLog,
    },
];
