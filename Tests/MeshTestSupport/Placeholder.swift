enum _PlaceholderMeshTestSupport {}
