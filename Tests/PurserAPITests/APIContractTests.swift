import PurserAPI
import Testing

extension APISuites {
    @Suite("The OpenAPI contract")
    struct ContractTests {
        @Test("every route the server registers is in protocol/openapi.yaml, and every documented route is served")
        func routesMatch() {
            let served = Set(APIRoute.allCases.map(\.rawValue))
            #expect(served.subtracting(Contract.routes).isEmpty, "served, not documented")
            #expect(Contract.routes.subtracting(served).isEmpty, "documented, not served")
        }
    }
}
