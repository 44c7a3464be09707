package proxy

func newInterceptor(cfg NFTConfig) (Interceptor, error) { return NewNFT(cfg) }
