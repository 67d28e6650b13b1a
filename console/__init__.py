"""The region's web console: merchants, promoters, tax reporters, inspectors, technicians
and admins over the edge's store (issue 13). Only this package knows the web framework;
every query it runs takes a :class:`console.scope.Scope`, so roles and tenants are
enforced where the data is read, not by hiding links."""
