import PurserProtocol

/// Where the conversation with one worker stands, over all the runs it serves: its phase,
/// the supervisor's requests it has not answered, and how far it has strayed from the
/// protocol (stray lines and unknown notification names count over the worker's life).
struct ProtocolState {
    enum Phase { case initializing, running, idle, stopping, finished }
    enum Pending { case initialize, run, shutdown, ping }

    /// A line from the worker, read.
    enum Incoming {
        case response(Pending, Result<JSONValue, RPCError>)
        case notification(String, JSONValue?)
        case request(RPCID, String, JSONValue?)
        /// Not a protocol message here, and why.
        case stray(String)
    }

    /// Whether a notification name is one to tell the user of.
    enum Unknown { case first, again, tooMany }

    static let maxStrayLines = 16
    static let maxUnknownNotifications = 64

    /// Set through `WorkerSession.phase`, which tells the calls and the pool.
    var phase = Phase.initializing
    /// What the worker said of itself in answer to initialize.
    var plugin: InitializeResult?
    private var nextID: Int64 = 1
    private var pending: [Int64: Pending] = [:]
    private(set) var strayLines = 0
    private var unknownNotifications: Set<String> = []

    /// The line of a request to the worker, remembered until the worker answers it.
    mutating func request(_ purpose: Pending, method: String, params: JSONValue?) -> [UInt8] {
        let id = nextID
        nextID += 1
        pending[id] = purpose
        return RPCMessage.request(id: .number(id), method: method, params: params).line()
    }

    mutating func read(_ line: ArraySlice<UInt8>) -> Incoming {
        guard phase != .idle else { return .stray("no run in progress") }
        let message: RPCMessage
        do {
            message = try RPCMessage(line: line)
        } catch {
            return .stray(error.description)
        }
        switch message {
        case .response(let id, let result):
            guard case .number(let number) = id, let purpose = pending.removeValue(forKey: number) else {
                return .stray("response to unknown id \(id)")
            }
            return .response(purpose, result)
        case .notification(let method, let params): return .notification(method, params)
        case .request(let id, let method, let params): return .request(id, method, params)
        }
    }

    /// Counts a stray line; true once there were more than the worker may write.
    mutating func strayed() -> Bool {
        strayLines += 1
        return strayLines > Self.maxStrayLines
    }

    mutating func unknown(_ method: String) -> Unknown {
        guard unknownNotifications.count < Self.maxUnknownNotifications else { return .tooMany }
        return unknownNotifications.insert(method).inserted ? .first : .again
    }
}
